/**
 * The message pipe a Konnectivity session runs over: whole binary messages,
 * in order, with send-side backpressure. A WebSocket is one; tests use an
 * in-memory pipe.
 *
 * @module
 */

import type { SpokewireError } from "../channel/errors.ts";

/** What a pipe calls back into its owner (the session). */
export interface MessagePipeHandlers {
  /**
   * One whole message from the peer. The pipe must not reuse `msg`'s memory
   * afterwards: the session hands out views into it.
   */
  message(msg: Uint8Array): void;
  /**
   * The pipe ended. `error` is undefined for a clean close by the peer, else
   * why it failed. Not called after this side's own `close()` or `abort()`.
   */
  closed(error?: SpokewireError): void;
}

/** A bidirectional, ordered, message-framed byte pipe. */
export interface MessagePipe {
  /** Begin delivering messages to `handlers`. Called once. */
  start(handlers: MessagePipeHandlers): void;
  /**
   * Optional: refuse incoming messages longer than `maxBytes` at the transport, before
   * they are buffered whole (a WebSocket checks each frame header). The session calls
   * it with its `maxMessageSize` before `start()`. A pipe without it delivers what it
   * gets, and the session refuses oversized messages after the fact.
   */
  limitMessageSize?(maxBytes: number): void;
  /**
   * Queue one message. Returns `undefined` while the pipe is below its
   * high-water mark; else a promise that resolves once it has drained below it
   * (the caller should wait before sending more bulk data). After the pipe has
   * ended, messages are dropped.
   */
  send(msg: Uint8Array): Promise<void> | undefined;
  /** Bytes queued by `send()` that have not left this side yet. */
  readonly bufferedAmount: number;
  /** The level at which `send()` starts returning a promise. */
  readonly highWaterMark: number;
  /** Send what is queued, then close; the peer sees a clean close. */
  close(): void;
  /** Drop everything and close now; the peer sees an error. */
  abort(reason?: unknown): void;
}

/** Default send-side high-water mark of the pipes in this module: 1 MiB. */
export const DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK = 1024 * 1024;
