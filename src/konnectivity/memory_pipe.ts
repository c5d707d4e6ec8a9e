/**
 * An in-memory {@link MessagePipe} pair, for tests and benchmarks. Delivery is
 * asynchronous (a scheduled task per batch), or manual (the test decides when
 * each side's messages arrive, to force interleavings).
 *
 * @module
 */

import { ChannelResetError, type SpokewireError } from "../channel/errors.ts";
import {
  DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK,
  type MessagePipe,
  type MessagePipeHandlers,
} from "./pipe.ts";

/** Options of {@link memoryPipePair}. */
export interface MemoryPipeOptions {
  /** Send-side high-water mark of each end (default {@link DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK}). */
  readonly highWaterMark?: number;
  /** When true, nothing is delivered until {@link MemoryPipe.flush} is called. */
  readonly manual?: boolean;
  /** How to schedule a delivery batch (default `setImmediate`, else `setTimeout(fn, 0)`). */
  readonly schedule?: (fn: () => void) => void;
}

/** Two connected in-memory pipe ends plus a way to kill the link. */
export interface MemoryPipePair {
  readonly a: MemoryPipe;
  readonly b: MemoryPipe;
  /** The link dies abruptly: both ends see an error. */
  kill(): void;
}

type PipeState = "open" | "closing" | "closed";

const defaultSchedule = (fn: () => void): void => {
  const si = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  if (typeof si === "function") si(fn);
  else setTimeout(fn, 0);
};

/** One end of an in-memory pipe. */
export class MemoryPipe implements MessagePipe {
  readonly highWaterMark: number;
  #peer!: MemoryPipe;
  #handlers: MessagePipeHandlers | undefined;
  #queue: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  #state: PipeState = "open";
  #scheduled = false;
  #drainWaiters: Array<() => void> = [];
  readonly #manual: boolean;
  readonly #schedule: (fn: () => void) => void;

  /** Use {@link memoryPipePair}. */
  constructor(options: MemoryPipeOptions = {}) {
    this.highWaterMark = options.highWaterMark ?? DEFAULT_MESSAGE_PIPE_HIGH_WATER_MARK;
    this.#manual = options.manual ?? false;
    this.#schedule = options.schedule ?? defaultSchedule;
  }

  /** @internal wire the two ends together */
  link(peer: MemoryPipe): void {
    this.#peer = peer;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  /** Messages queued on this end, not yet delivered to the peer. */
  get pending(): number {
    return this.#queue.length - this.#head;
  }

  start(handlers: MessagePipeHandlers): void {
    if (this.#handlers) throw new TypeError("MemoryPipe.start() called twice");
    this.#handlers = handlers;
    // The peer may have sent before we started.
    if (this.#peer.pending > 0) this.#peer.#kick();
  }

  send(msg: Uint8Array): Promise<void> | undefined {
    if (this.#state !== "open") return undefined;
    this.#queue.push(msg);
    this.#buffered += msg.byteLength;
    this.#kick();
    if (this.#buffered < this.highWaterMark) return undefined;
    return new Promise<void>((r) => this.#drainWaiters.push(r));
  }

  /**
   * Deliver up to `max` queued messages to the peer now. Returns how many were
   * delivered. Manual mode uses it to control interleavings.
   */
  flush(max: number = Number.POSITIVE_INFINITY): number {
    let n = 0;
    const peer = this.#peer;
    while (
      n < max &&
      this.#head < this.#queue.length &&
      peer.#handlers &&
      peer.#state !== "closed"
    ) {
      const msg = this.#queue[this.#head];
      this.#queue[this.#head++] = EMPTY;
      this.#buffered -= msg.byteLength;
      n++;
      peer.#handlers.message(msg);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#buffered < this.highWaterMark && this.#drainWaiters.length > 0) {
      for (const w of this.#drainWaiters.splice(0)) w();
    }
    if (this.#state === "closing" && this.pending === 0) this.#finishClose();
    return n;
  }

  close(): void {
    if (this.#state !== "open") return;
    this.#state = "closing";
    if (this.pending === 0) this.#finishClose();
    else this.#kick();
  }

  abort(_reason?: unknown): void {
    if (this.#state === "closed") return;
    this.#drop();
    this.#peer.#ended(new ChannelResetError("memory pipe: the peer aborted"));
  }

  /** The link died: this end sees `error`. */
  fail(error: SpokewireError): void {
    if (this.#state === "closed") return;
    this.#drop();
    this.#handlers?.closed(error);
  }

  #drop(): void {
    this.#state = "closed";
    this.#queue = [];
    this.#head = 0;
    this.#buffered = 0;
    for (const w of this.#drainWaiters.splice(0)) w();
  }

  #finishClose(): void {
    this.#drop();
    this.#peer.#ended(undefined);
  }

  #ended(error: SpokewireError | undefined): void {
    if (this.#state === "closed") return;
    this.#drop();
    this.#handlers?.closed(error);
  }

  #kick(): void {
    if (this.#manual || this.#scheduled) return;
    this.#scheduled = true;
    this.#schedule(() => {
      this.#scheduled = false;
      this.flush();
    });
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Two connected in-memory pipe ends.
 *
 * @example
 * ```ts
 * import { memoryPipePair } from "./memory_pipe.ts";
 * const { a, b } = memoryPipePair();
 * const got = new Promise<Uint8Array>((r) => b.start({ message: r, closed() {} }));
 * a.start({ message() {}, closed() {} });
 * a.send(new Uint8Array([1, 2, 3]));
 * if ((await got).length !== 3) throw new Error("lost");
 * ```
 */
export function memoryPipePair(options: MemoryPipeOptions = {}): MemoryPipePair {
  const a = new MemoryPipe(options);
  const b = new MemoryPipe(options);
  a.link(b);
  b.link(a);
  return {
    a,
    b,
    kill(): void {
      a.fail(new ChannelResetError("memory pipe killed"));
      b.fail(new ChannelResetError("memory pipe killed"));
    },
  };
}
