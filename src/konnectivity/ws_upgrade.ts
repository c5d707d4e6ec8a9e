/**
 * The WebSocket opening handshake (RFC 6455 section 4) done by hand over a
 * verified spokewire Channel, so the WebSocket runs inside our own mutual TLS
 * (identity checked before a byte of HTTP is read) in both runtimes.
 *
 * @module
 */

import type WebSocket from "ws";
import { webSocketOverChannel } from "../_runtime/ws_channel.ts";
import { AuthError, DialError, ProtocolError } from "../channel/errors.ts";
import type { Channel } from "../channel/types.ts";
import { encodeHttpHead, readHttpHead } from "./http_head.ts";
import { DialBusyError } from "./session.ts";

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Header carrying the agent id (upstream: `agentID` gRPC metadata). */
export const AGENT_ID_HEADER = "x-konnectivity-agent-id";
/** Header carrying the agent's served destinations (upstream: `agentIdentifiers`). */
export const AGENT_IDENTIFIERS_HEADER = "x-konnectivity-agent-identifiers";
/** Header carrying the reason of a refused upgrade. */
export const REFUSAL_REASON_HEADER = "x-konnectivity-error";
/** The request path agents connect to. */
export const KONNECTIVITY_AGENT_PATH = "/konnectivity/agent";
/**
 * The WebSocket extension (RFC 6455 section 9, no parameters) by which an agent offers,
 * and the server grants, masking keys of 00 00 00 00 on the agent's frames: SPEC.md
 * section 1, "Masking". It changes nothing else on the wire.
 */
export const ZERO_MASK_EXTENSION = "x-spokewire-zero-mask";

/**
 * The extensions a `Sec-WebSocket-Extensions` value names, lower-cased, each with its
 * parameters as written (empty string for none). Repeated headers arrive joined with ", ".
 */
function parseWebSocketExtensions(
  value: string | undefined,
): { readonly name: string; readonly params: string }[] {
  if (value === undefined) return [];
  const out: { name: string; params: string }[] = [];
  for (const item of value.split(",")) {
    const semi = item.indexOf(";");
    const name = (semi < 0 ? item : item.slice(0, semi)).trim().toLowerCase();
    if (name === "") continue;
    out.push({ name, params: semi < 0 ? "" : item.slice(semi + 1).trim() });
  }
  return out;
}

/** Whether a `Sec-WebSocket-Extensions` request value offers {@link ZERO_MASK_EXTENSION}. */
export function offersZeroMask(value: string | undefined): boolean {
  return parseWebSocketExtensions(value).some(
    (e) => e.name === ZERO_MASK_EXTENSION && e.params === "",
  );
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`. */
export async function webSocketAcceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + WS_GUID));
  return base64(new Uint8Array(digest));
}

async function writeAll(channel: Channel, bytes: Uint8Array): Promise<void> {
  const w = channel.writable.getWriter();
  try {
    await w.write(bytes);
  } finally {
    w.releaseLock();
  }
}

/** Options of {@link upgradeClient}. */
export interface UpgradeClientOptions {
  /** `Host` header value. */
  readonly host: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly maxHeaderBytes: number;
  /** Guards against a server that never answers the upgrade. */
  readonly timeoutMs: number;
  readonly maxPayload: number;
  readonly signal?: AbortSignal;
  /**
   * Offer {@link ZERO_MASK_EXTENSION}, and mask with zero keys if the server grants it.
   * Only over a TLS connection whose server was verified. Default false.
   */
  readonly offerZeroMask?: boolean;
}

/**
 * Send the upgrade request on `channel` and wait for `101`. A refusal rejects
 * with `AUTH_FAILED` (401/403), `DIAL_FAILED` (503, the server is full; a
 * {@link DialBusyError} with `retryAfterMs` when it sent `Retry-After`) or
 * `PROTOCOL_ERROR`; the server's reason is in the message. On success the
 * returned WebSocket owns `channel`.
 */
export async function upgradeClient(
  channel: Channel,
  options: UpgradeClientOptions,
): Promise<WebSocket> {
  const key = base64(crypto.getRandomValues(new Uint8Array(16)));
  await writeAll(
    channel,
    encodeHttpHead(`GET ${options.path} HTTP/1.1`, {
      Host: options.host,
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": key,
      "Sec-WebSocket-Version": "13",
      ...(options.offerZeroMask ? { "Sec-WebSocket-Extensions": ZERO_MASK_EXTENSION } : {}),
      ...options.headers,
    }),
  );
  const reader = channel.readable.getReader();
  let head: Awaited<ReturnType<typeof readHttpHead>>;
  try {
    head = await readHttpHead(reader, {
      maxBytes: options.maxHeaderBytes,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      what: `WebSocket upgrade response from ${options.host}`,
    });
  } finally {
    reader.releaseLock();
  }
  const status = Number(head.startLine[1]);
  if (status !== 101) {
    const reason = head.headers.get(REFUSAL_REASON_HEADER) ?? head.startLine.slice(2).join(" ");
    const msg = `${options.host} refused the agent (HTTP ${status}): ${reason}`;
    if (status === 401 || status === 403) throw new AuthError(msg);
    if (status === 503) {
      const after = /^\d{1,7}$/.exec(head.headers.get("retry-after") ?? "")?.[0];
      if (after !== undefined) throw new DialBusyError(msg, Math.min(Number(after), 3600) * 1000);
      throw new DialError(msg);
    }
    throw new ProtocolError(msg);
  }
  if (head.headers.get("sec-websocket-accept") !== (await webSocketAcceptKey(key))) {
    throw new ProtocolError(`${options.host}: bad Sec-WebSocket-Accept in the upgrade response`);
  }
  // RFC 6455 section 4.1: an extension the client did not offer (or one named twice)
  // fails the connection.
  const extensions = head.headers.get("sec-websocket-extensions");
  let zeroMask = false;
  for (const e of parseWebSocketExtensions(extensions)) {
    if (options.offerZeroMask && !zeroMask && e.name === ZERO_MASK_EXTENSION && e.params === "") {
      zeroMask = true;
    } else {
      throw new ProtocolError(
        `${options.host}: the upgrade response names extensions that were not offered: ${extensions}`,
      );
    }
  }
  return webSocketOverChannel(channel, head.rest, {
    role: "client",
    maxPayload: options.maxPayload,
    zeroMaskingKeys: zeroMask,
  });
}

/**
 * Answer an upgrade request with 101 and return the server-side WebSocket;
 * `grantZeroMask` names {@link ZERO_MASK_EXTENSION} in the answer (only for a client
 * that offered it). The server takes frames masked with any key either way.
 */
export async function acceptUpgrade(
  channel: Channel,
  key: string,
  rest: Uint8Array,
  maxPayload: number,
  grantZeroMask = false,
): Promise<WebSocket> {
  await writeAll(
    channel,
    encodeHttpHead("HTTP/1.1 101 Switching Protocols", {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Accept": await webSocketAcceptKey(key),
      ...(grantZeroMask ? { "Sec-WebSocket-Extensions": ZERO_MASK_EXTENSION } : {}),
    }),
  );
  return webSocketOverChannel(channel, rest, { role: "server", maxPayload });
}

/** Refuse a request with `status`, the reason in a header and the body, then close. */
export async function refuseHttp(
  channel: Channel,
  status: number,
  statusText: string,
  reason: string,
  extraHeaders: Readonly<Record<string, string>> = {},
): Promise<void> {
  const body = new TextEncoder().encode(`${reason}\n`);
  const safe = reason.replace(/[\r\n]/g, " ").slice(0, 512);
  try {
    await writeAll(
      channel,
      encodeHttpHead(`HTTP/1.1 ${status} ${statusText}`, {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": String(body.byteLength),
        Connection: "close",
        ...extraHeaders,
        [REFUSAL_REASON_HEADER]: safe,
      }),
    );
    await writeAll(channel, body);
    await channel.close();
  } catch {
    channel.abort();
  }
}
