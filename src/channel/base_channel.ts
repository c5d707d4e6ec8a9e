/**
 * The base class every transport extends. It owns the Web Streams, half-close,
 * close vs abort, the `closed` promise and backpressure; a transport supplies
 * only its wire part (the `_` methods).
 *
 * @module
 */

import { bounded } from "../_util/deadline.ts";
import { type ChannelConfig, verifyChannelConfig } from "./config.ts";
import { AbortedError, ChannelClosedError, ChannelResetError, SpokewireError } from "./errors.ts";
import { type ChannelEvent, type ChannelState, isTerminal, transition } from "./state.ts";
import type { Channel, CloseInfo, CloseKind, PeerIdentity } from "./types.ts";

/** Marker written through the writable by `closeWrite()`, so it orders after earlier writes. */
const CLOSE_MARK: Uint8Array = new Uint8Array(0);

/** What a transport passes to {@link BaseChannel}'s constructor. */
export interface BaseChannelInit {
  readonly peer: PeerIdentity;
  readonly config?: Partial<ChannelConfig>;
}

/**
 * Extend this to write a transport. The subclass calls `_push`, `_pushEnd`
 * and `_fail` as its wire delivers; the base calls `_send`, `_sendEnd`,
 * `_resume`, `_release` and `_destroy`.
 */
export abstract class BaseChannel implements Channel {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly peer: PeerIdentity;
  readonly closed: Promise<CloseInfo>;
  /** The limits in force for this channel. */
  protected readonly config: ChannelConfig;

  #state: ChannelState = "open";
  #rc!: ReadableStreamDefaultController<Uint8Array>;
  #wc!: WritableStreamDefaultController;
  #readOpen = true;
  #discard = false;
  #bytesRead = 0;
  #bytesWritten = 0;
  #localFin: Promise<void> | undefined;
  #closeWriteCall: Promise<void> | undefined;
  #pendingWriteReject: ((e: unknown) => void) | undefined;
  #resolveClosed!: (info: CloseInfo) => void;
  #stateWaiters: Array<() => void> = [];

  protected constructor(init: BaseChannelInit) {
    this.peer = init.peer;
    this.config = verifyChannelConfig(init.config);
    this.closed = new Promise((r) => {
      this.#resolveClosed = r;
    });
    const hwm = this.config.readHighWaterMark;
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.#rc = c;
        },
        pull: () => {
          this._resume();
        },
        cancel: () => {
          // The reader is done with the input: drop what else arrives, keep the flow going.
          this.#readOpen = false;
          this.#discard = true;
          this._resume();
        },
      },
      { highWaterMark: hwm, size: (c) => c.byteLength },
    );
    this.writable = new WritableStream<Uint8Array>(
      {
        start: (c) => {
          this.#wc = c;
        },
        write: (chunk) => this.#sinkWrite(chunk),
        close: () => this.#finishWrite(),
        abort: (reason) => this.abort(reason),
      },
      { highWaterMark: this.config.writeHighWaterMark, size: (c) => c.byteLength },
    );
  }

  // ---- the transport's part -------------------------------------------------

  /** Put `chunk` on the wire. Return a promise only when the caller must wait (backpressure). */
  protected abstract _send(chunk: Uint8Array): void | Promise<void>;
  /** Send end-of-stream after everything sent so far; resolve once it is on the wire. */
  protected abstract _sendEnd(): void | Promise<void>;
  /** The reader wants more: resume delivery if it was paused. */
  protected abstract _resume(): void;
  /** Both directions ended cleanly: free the transport. */
  protected abstract _release(): void | Promise<void>;
  /** Tear down now. `reset` true: make the peer see an error (RST, reset frame). Idempotent. */
  protected abstract _destroy(reset: boolean): void;

  /** Deliver bytes from the peer. Returns false when the transport should pause. */
  protected _push(chunk: Uint8Array): boolean {
    if (this.#discard) return true;
    if (!this.#readOpen) return false;
    this.#bytesRead += chunk.byteLength;
    this.#rc.enqueue(chunk);
    return (this.#rc.desiredSize ?? 0) > 0;
  }

  /** The peer half-closed. */
  protected _pushEnd(): void {
    if (this.#state !== "open" && this.#state !== "write-closed") return;
    if (this.#readOpen) {
      this.#readOpen = false;
      this.#rc.close();
    }
    this.#move("remote-fin");
  }

  /** The transport failed or the peer reset: both streams error with `error`. */
  protected _fail(error: SpokewireError): void {
    if (isTerminal(this.#state)) return;
    this.#terminate("fail", "reset", error);
    this._destroy(false);
  }

  /** Bytes in the readable's queue that the reader has not taken yet. */
  protected get _queuedReadBytes(): number {
    return this.#readOpen ? this.config.readHighWaterMark - (this.#rc.desiredSize ?? 0) : 0;
  }

  /** The current state (for subclasses and tests). */
  get state(): ChannelState {
    return this.#state;
  }

  // ---- the caller's part ----------------------------------------------------

  closeWrite(): Promise<void> {
    if (this.#localFin) return this.#localFin;
    if (this.#closeWriteCall) return this.#closeWriteCall;
    if (isTerminal(this.#state)) {
      return Promise.reject(new ChannelClosedError("closeWrite() on a channel that has ended"));
    }
    if (this.writable.locked) {
      return Promise.reject(
        new TypeError("closeWrite(): the writable is locked; call writer.close() instead"),
      );
    }
    const writer = this.writable.getWriter();
    // The mark queues behind earlier writes; #finishWrite runs when it reaches the sink.
    this.#closeWriteCall = writer.write(CLOSE_MARK).finally(() => writer.releaseLock());
    return this.#closeWriteCall;
  }

  async close(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (isTerminal(this.#state)) return;
    if (!this.readable.locked && this.#readOpen) {
      // Nobody reads: drain the input so the peer can finish.
      this.readable.cancel().catch(() => {});
    }
    const graceful = (async () => {
      if (!this.#localFin && !this.#closeWriteCall && this.writable.locked) {
        await this.#finishWrite();
      } else {
        await this.closeWrite();
      }
      await this.#until((s) => s === "releasing" || isTerminal(s));
      await this.closed;
    })();
    try {
      await bounded(graceful, {
        timeoutMs: this.config.closeTimeoutMs,
        what: "graceful close",
        signal: options.signal,
      });
    } catch (err) {
      this.abort(err);
    }
  }

  abort(reason?: unknown): void {
    if (isTerminal(this.#state)) return;
    const err =
      reason instanceof SpokewireError
        ? reason
        : new AbortedError("channel aborted locally", { cause: reason });
    this.#terminate("abort", "aborted", err);
    this._destroy(true);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- internals ------------------------------------------------------------

  #sinkWrite(chunk: Uint8Array): void | Promise<void> {
    if (chunk === CLOSE_MARK) return this.#finishWrite();
    if (this.#localFin || this.#state === "write-closed" || this.#state === "releasing") {
      throw new ChannelClosedError("write after closeWrite(): the channel's write side is closed");
    }
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`Channel writes take Uint8Array, got ${typeof chunk}`);
    }
    if (chunk.byteLength === 0) return;
    this.#bytesWritten += chunk.byteLength;
    const r = this._send(chunk);
    if (r === undefined) return;
    return new Promise<void>((resolve, reject) => {
      this.#pendingWriteReject = reject;
      r.then(
        () => {
          this.#pendingWriteReject = undefined;
          resolve();
        },
        (e) => {
          this.#pendingWriteReject = undefined;
          reject(e);
        },
      );
    });
  }

  #finishWrite(): Promise<void> {
    if (this.#localFin) return this.#localFin;
    this.#localFin = (async () => {
      if (isTerminal(this.#state)) throw new ChannelClosedError("channel has ended");
      await this._sendEnd();
      if (this.#state === "open" || this.#state === "read-ended") this.#move("local-fin");
    })();
    this.#localFin.catch(() => {}); // callers get the rejection; never unhandled
    return this.#localFin;
  }

  #move(event: ChannelEvent): void {
    this.#state = transition(this.#state, event);
    const waiters = this.#stateWaiters;
    this.#stateWaiters = [];
    for (const w of waiters) w();
    if (this.#state === "releasing") this.#doRelease();
  }

  async #doRelease(): Promise<void> {
    try {
      await this._release();
    } catch (err) {
      this._fail(new ChannelResetError("releasing the transport failed", { cause: err }));
      return;
    }
    if (this.#state !== "releasing") return;
    this.#move("released");
    this.#settle("closed", undefined);
  }

  #terminate(event: "abort" | "fail", kind: CloseKind, err: SpokewireError): void {
    this.#move(event);
    if (this.#readOpen) {
      this.#readOpen = false;
      this.#rc.error(err);
    }
    this.#wc.error(err);
    this.#pendingWriteReject?.(err);
    this.#pendingWriteReject = undefined;
    this.#settle(kind, err);
  }

  #settle(kind: CloseKind, error: SpokewireError | undefined): void {
    this.#resolveClosed({
      kind,
      error,
      bytesRead: this.#bytesRead,
      bytesWritten: this.#bytesWritten,
    });
  }

  #until(pred: (s: ChannelState) => boolean): Promise<void> {
    if (pred(this.#state)) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (pred(this.#state)) resolve();
        else this.#stateWaiters.push(check);
      };
      this.#stateWaiters.push(check);
    });
  }
}
