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
/** `ws` readyState OPEN. */
const WS_OPEN = 1;

type WsPipeState = "open" | "closed";

class WsPipe implements MessagePipe {
  readonly highWaterMark: number;
  readonly #ws: WebSocket;
  #handlers: MessagePipeHandlers | undefined;
  #state: WsPipeState = "open";
  #buffered = 0;
  #drainWaiters: Array<() => void> = [];

  constructor(ws: WebSocket, options: WsPipeOptions) {
    if (ws.readyState !== WS_OPEN) throw new TypeError("wsPipe needs an open WebSocket");
    this.highWaterMark = options.highWaterMark ?? DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK;
    this.#ws = ws;
    ws.binaryType = "nodebuffer";
  }

  get bufferedAmount(): number {
    return this.#buffered;
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
      // A plain Uint8Array view over the received bytes (no copy).
      handlers.message(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    ws.on("close", (code: number) => {
      if (code === WS_NORMAL_CLOSURE) this.#end(undefined);
      else this.#end(new ChannelResetError(`the WebSocket closed abnormally (code ${code})`));
    });
    ws.on("error", (err: Error) => {
      this.#end(new ChannelResetError("the WebSocket failed", { cause: err }));
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
