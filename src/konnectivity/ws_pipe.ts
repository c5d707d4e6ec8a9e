/**
 * A {@link MessagePipe} over a `ws` WebSocket (the npm package, which works in
 * Node and Deno): one Packet per binary message.
 *
 * @module
 */

import type WebSocket from "ws";
import { ChannelResetError, ProtocolError, type SpokewireError } from "../channel/errors.ts";
import {
  DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK,
  type MessagePipe,
  type MessagePipeHandlers,
} from "./pipe.ts";

/** Options of {@link wsPipe}. */
export interface WsPipeOptions {
  /** Send-side high-water mark (default {@link DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK}). */
  readonly highWaterMark?: number;
}

/** WebSocket close code for a normal close. */
const WS_NORMAL_CLOSURE = 1000;
/** WebSocket close code for a protocol error (text frame on a binary pipe). */
const WS_PROTOCOL_ERROR = 1002;
/** WebSocket close code for a message over the size limit. */
const WS_MESSAGE_TOO_BIG = 1009;
/** `ws` readyState OPEN. */
const WS_OPEN = 1;
/**
 * Most fragments one message may arrive in. Each buffered fragment costs an object on top
 * of its bytes; `ws` defaults to 16 384 but a caller may have turned the limit off.
 */
const MAX_FRAGMENTS = 16 * 1024;
/** Fewest payload bytes per fragment, on average, before the count limit applies. */
const MIN_BYTES_PER_FRAGMENT = 64;

/** The parts of a `ws` receiver that hold its limits (private to `ws` 8, checked at run time). */
interface WsReceiverLimits {
  _maxPayload?: unknown;
  _maxFragments?: unknown;
}

type WsPipeState = "open" | "closed";

class WsPipe implements MessagePipe {
  readonly highWaterMark: number;
  readonly #ws: WebSocket;
  #handlers: MessagePipeHandlers | undefined;
  #state: WsPipeState = "open";
  #buffered = 0;
  #drainWaiters: Array<() => void> = [];
  #maxMessageSize = Number.POSITIVE_INFINITY;

  constructor(ws: WebSocket, options: WsPipeOptions) {
    if (ws.readyState !== WS_OPEN) throw new TypeError("wsPipe needs an open WebSocket");
    this.highWaterMark = options.highWaterMark ?? DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK;
    this.#ws = ws;
    ws.binaryType = "nodebuffer";
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  limitMessageSize(maxBytes: number): void {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
    }
    this.#maxMessageSize = maxBytes;
    // Tighten the socket's own limits, so that an oversized frame is refused from its
    // header (close 1009) and a message that never completes cannot buffer more than
    // this, nor more fragments than its bytes justify. `ws` takes these limits only at
    // construction, so they are set on its receiver; if that changes shape, the size
    // check in the message handler below still holds.
    const r = (this.#ws as unknown as { _receiver?: WsReceiverLimits })._receiver;
    if (r && typeof r._maxPayload === "number") {
      if (r._maxPayload === 0 || r._maxPayload > maxBytes) r._maxPayload = maxBytes;
    }
    if (r && typeof r._maxFragments === "number") {
      const cap = Math.max(
        MIN_BYTES_PER_FRAGMENT,
        Math.min(MAX_FRAGMENTS, Math.floor(maxBytes / MIN_BYTES_PER_FRAGMENT)),
      );
      if (r._maxFragments === 0 || r._maxFragments > cap) r._maxFragments = cap;
    }
  }

  start(handlers: MessagePipeHandlers): void {
    if (this.#handlers) throw new TypeError("wsPipe.start() called twice");
    this.#handlers = handlers;
    const ws = this.#ws;
    ws.on("message", (data: unknown, isBinary: boolean) => {
      if (this.#state !== "open") return;
      if (!isBinary || !(data instanceof Uint8Array)) {
        this.#end(new ProtocolError("a text message on a konnectivity WebSocket"));
        ws.close(WS_PROTOCOL_ERROR, "binary messages only");
        return;
      }
      if (data.byteLength > this.#maxMessageSize) {
        this.#end(
          new ProtocolError(
            `a message of ${data.byteLength} bytes exceeds the limit of ${this.#maxMessageSize}`,
          ),
        );
        ws.close(WS_MESSAGE_TOO_BIG, "message too big");
        return;
      }
      // A plain Uint8Array view over the received bytes (no copy).
      handlers.message(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    ws.on("close", (code: number) => {
      if (code === WS_NORMAL_CLOSURE) this.#end(undefined);
      else this.#end(new ChannelResetError(`the WebSocket closed abnormally (code ${code})`));
    });
    ws.on("error", (err: Error) => {
      // `ws` marks the peer's framing violations (oversized, too many fragments, bad
      // opcode, RSV bits, bad UTF-8 or close code...) with a WS_ERR_* code and closes
      // with 1002/1007/1008/1009 itself.
      const code = (err as { code?: unknown }).code;
      if (typeof code === "string" && code.startsWith("WS_ERR_")) {
        this.#end(
          new ProtocolError(`WebSocket protocol violation: ${err.message}`, { cause: err }),
        );
      } else {
        this.#end(new ChannelResetError("the WebSocket failed", { cause: err }));
      }
    });
  }

  send(msg: Uint8Array): Promise<void> | undefined {
    if (this.#state !== "open") return undefined;
    const n = msg.byteLength;
    this.#buffered += n;
    this.#ws.send(msg, { binary: true }, () => {
      this.#buffered -= n;
      if (this.#buffered < this.highWaterMark && this.#drainWaiters.length > 0) {
        for (const w of this.#drainWaiters.splice(0)) w();
      }
    });
    if (this.#buffered < this.highWaterMark) return undefined;
    return new Promise<void>((r) => this.#drainWaiters.push(r));
  }

  close(): void {
    if (this.#state !== "open") return;
    this.#state = "closed";
    this.#ws.close(WS_NORMAL_CLOSURE, "");
    this.#wakeAll();
  }

  abort(_reason?: unknown): void {
    if (this.#state !== "open") return;
    this.#state = "closed";
    this.#ws.terminate();
    this.#wakeAll();
  }

  #wakeAll(): void {
    this.#buffered = 0;
    for (const w of this.#drainWaiters.splice(0)) w();
  }

  #end(error: SpokewireError | undefined): void {
    if (this.#state !== "open") return;
    this.#state = "closed";
    this.#wakeAll();
    this.#handlers?.closed(error);
  }
}

/**
 * Wrap an open `ws` WebSocket as a {@link MessagePipe}. The session owns the
 * socket from then on (it closes or terminates it).
 *
 * @example
 * ```ts ignore
 * import WebSocket from "ws";
 * import { KonnectivitySession, wsPipe } from "spokewire";
 * const ws = new WebSocket("wss://proxy.example:8091/agent");
 * await new Promise((r) => ws.once("open", r));
 * const session = new KonnectivitySession(wsPipe(ws), { peer, role: "agent", onDial });
 * ```
 */
export function wsPipe(ws: WebSocket, options: WsPipeOptions = {}): MessagePipe {
  return new WsPipe(ws, options);
}
