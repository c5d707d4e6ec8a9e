/**
 * An in-memory channel pair: the executable specification of the Channel
 * contract, and a test double.
 *
 * @module
 */

import { BaseChannel } from "./base_channel.ts";
import type { ChannelConfig } from "./config.ts";
import { ChannelResetError } from "./errors.ts";
import type { Channel, PeerIdentity } from "./types.ts";

/** Options for {@link memoryPair}. */
export interface MemoryPairOptions {
  readonly config?: Partial<ChannelConfig>;
  /** The identity each side sees for its peer; defaults to scheme `"none"`. */
  readonly peers?: readonly [PeerIdentity, PeerIdentity];
}

/** A connected pair plus a way to kill the "wire" between them. */
export interface MemoryPair {
  readonly a: Channel;
  readonly b: Channel;
  /** Simulate the transport dying: both ends see `CHANNEL_RESET`. */
  kill(): void;
}

class MemoryChannel extends BaseChannel {
  other!: MemoryChannel;
  #paused: (() => void) | undefined;
  #dead = false;

  constructor(peer: PeerIdentity, config?: Partial<ChannelConfig>) {
    super({ peer, config });
  }

  protected _send(chunk: Uint8Array): void | Promise<void> {
    // Copy: the writer may reuse its buffer once the write resolved, as with a socket.
    if (this.other.deliver(chunk.slice())) return;
    return new Promise<void>((resolve) => {
      this.other.#paused = resolve;
    });
  }

  deliver(chunk: Uint8Array): boolean {
    if (this.#dead) return true;
    return this._push(chunk);
  }

  protected _sendEnd(): void {
    if (!this.other.#dead) this.other._pushEnd();
  }

  protected _resume(): void {
    const p = this.#paused;
    this.#paused = undefined;
    p?.();
  }

  protected _release(): void {
    this.#dead = true;
  }

  protected _destroy(reset: boolean): void {
    if (this.#dead) return;
    this.#dead = true;
    this._resume();
    if (reset) this.other.fail(new ChannelResetError("peer reset the memory channel"));
  }

  fail(err: ChannelResetError): void {
    this._resume();
    this._fail(err);
  }
}

const NONE: PeerIdentity = Object.freeze({ scheme: "none", id: "memory", fingerprint: "" });

/**
 * Create two connected in-memory channels.
 *
 * @example
 * ```ts
 * import { memoryPair } from "../../mod.ts";
 * const { a, b } = memoryPair();
 * const w = a.writable.getWriter();
 * await w.write(new TextEncoder().encode("hi"));
 * await w.close();
 * const { value } = await b.readable.getReader().read();
 * if (new TextDecoder().decode(value) !== "hi") throw new Error("lost");
 * ```
 */
export function memoryPair(options: MemoryPairOptions = {}): MemoryPair {
  const [pa, pb] = options.peers ?? [NONE, NONE];
  const a = new MemoryChannel(pa, options.config);
  const b = new MemoryChannel(pb, options.config);
  a.other = b;
  b.other = a;
  return {
    a,
    b,
    kill(): void {
      a.fail(new ChannelResetError("memory transport killed"));
      b.fail(new ChannelResetError("memory transport killed"));
    },
  };
}
