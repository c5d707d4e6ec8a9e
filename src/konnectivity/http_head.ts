/**
 * Reading one HTTP/1.1 message head (request or response line plus headers)
 * from a byte stream, bounded in size and time: the WebSocket upgrade and the
 * HTTP CONNECT frontend both start with one.
 *
 * @module
 */

import {
  AbortedError,
  ChannelResetError,
  MalformedInputError,
  TimeoutError,
} from "../channel/errors.ts";

/** A parsed message head. */
export interface HttpHead {
  /** The first line split on spaces: `[method, target, version]` or `[version, status, ...reason]`. */
  readonly startLine: readonly string[];
  /** Header names lower-cased; repeated headers joined with ", ". */
  readonly headers: ReadonlyMap<string, string>;
  /** Bytes read past the head (the start of the body or tunneled stream). */
  readonly rest: Uint8Array;
}

/** Limits of {@link readHttpHead}. */
export interface ReadHttpHeadOptions {
  /** Largest head accepted, in bytes. Larger: `HeadTooLargeError`. */
  readonly maxBytes: number;
  /** Guards against a peer that sends its head slowly or never (slowloris). */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** For messages: what is being read. */
  readonly what: string;
}

/**
 * The head exceeded `maxBytes` (HTTP 431). Code `MALFORMED_INPUT` with
 * `reason` `"head-too-large"`; `instanceof` checks the reason.
 */
export class HeadTooLargeError extends MalformedInputError {
  readonly reason = "head-too-large" as const;
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      MalformedInputError[Symbol.hasInstance](value) &&
      (value as { reason?: unknown }).reason === "head-too-large"
    );
  }
}

const CRLFCRLF = [13, 10, 13, 10];

function findEnd(buf: Uint8Array, from: number): number {
  for (let i = Math.max(0, from - 3); i + 3 < buf.length; i++) {
    if (
      buf[i] === CRLFCRLF[0] &&
      buf[i + 1] === CRLFCRLF[1] &&
      buf[i + 2] === CRLFCRLF[2] &&
      buf[i + 3] === CRLFCRLF[3]
    ) {
      return i;
    }
  }
  return -1;
}

/** Parse the text of a head (without the final blank line). */
export function parseHttpHeadText(text: string, rest: Uint8Array): HttpHead {
  const lines = text.split("\r\n");
  const first = lines[0] ?? "";
  const startLine = first.split(" ");
  if (startLine.length < 2 || startLine.some((p, i) => p === "" && i < 2)) {
    throw new MalformedInputError(`malformed HTTP start line ${JSON.stringify(first)}`);
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const c = line.indexOf(":");
    if (c <= 0 || /\s/.test(line.slice(0, c))) {
      throw new MalformedInputError(`malformed HTTP header line ${JSON.stringify(line)}`);
    }
    const name = line.slice(0, c).toLowerCase();
    const value = line.slice(c + 1).trim();
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  return { startLine, headers, rest };
}

/**
 * Read one message head from `reader`. Rejects with `HeadTooLargeError`,
 * `MalformedInputError`, `TimeoutError`, `AbortedError`, or `ChannelResetError`
 * if the stream ends first. The reader stays locked; the caller releases it.
 */
export async function readHttpHead(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  options: ReadHttpHeadOptions,
): Promise<HttpHead> {
  const { maxBytes, timeoutMs, signal, what } = options;
  let buf = new Uint8Array(0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TimeoutError(`${what}: no complete head within ${timeoutMs} ms`, timeoutMs)),
      timeoutMs,
    );
    onAbort = () => reject(new AbortedError(`${what} was aborted`, { cause: signal?.reason }));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  stop.catch(() => {});
  try {
    for (;;) {
      const r = await Promise.race([reader.read(), stop]);
      if (r.done) {
        throw new ChannelResetError(`${what}: the stream ended after ${buf.length} bytes of head`);
      }
      const from = buf.length;
      const next = new Uint8Array(buf.length + r.value.byteLength);
      next.set(buf);
      next.set(r.value, buf.length);
      buf = next;
      const end = findEnd(buf, from);
      if (end >= 0) {
        if (end + 4 > maxBytes) {
          throw new HeadTooLargeError(`${what}: head of ${end + 4} bytes exceeds ${maxBytes}`);
        }
        const text = new TextDecoder("latin1").decode(buf.subarray(0, end));
        return parseHttpHeadText(text, buf.slice(end + 4));
      }
      if (buf.length > maxBytes) {
        throw new HeadTooLargeError(`${what}: head exceeds ${maxBytes} bytes`);
      }
    }
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/** Encode a head: start line, headers, blank line. */
export function encodeHttpHead(startLine: string, headers: Record<string, string>): Uint8Array {
  let s = `${startLine}\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) throw new TypeError(`header ${k} holds a line break`);
    s += `${k}: ${v}\r\n`;
  }
  return new TextEncoder().encode(`${s}\r\n`);
}
