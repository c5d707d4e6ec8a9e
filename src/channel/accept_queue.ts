/**
 * A bounded queue of accepted channels that a {@link Listener} hands out as an
 * async iterable. Transports push; `end()` stops the iteration.
 *
 * @module
 */

import type { Channel } from "./types.ts";

/** Default number of accepted channels waiting for the caller before new ones are refused. */
export const DEFAULT_ACCEPT_BACKLOG = 128;

/** Holds accepted channels until the caller takes them. */
export class AcceptQueue implements AsyncIterable<Channel> {
  #items: Channel[] = [];
  #waiters: Array<(r: IteratorResult<Channel>) => void> = [];
  #ended = false;
  readonly #backlog: number;

  constructor(backlog: number = DEFAULT_ACCEPT_BACKLOG) {
    this.#backlog = backlog;
  }

  /** Offer a channel. Returns false (and the caller must abort it) when full or ended. */
  push(ch: Channel): boolean {
    if (this.#ended) return false;
    const w = this.#waiters.shift();
    if (w) {
      w({ value: ch, done: false });
      return true;
    }
    if (this.#items.length >= this.#backlog) return false;
    this.#items.push(ch);
    return true;
  }

  /** Stop the iteration; channels not yet taken are aborted. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w({ value: undefined, done: true });
    for (const ch of this.#items.splice(0)) ch.abort(new Error("listener closed before accept"));
  }

  get ended(): boolean {
    return this.#ended;
  }

  [Symbol.asyncIterator](): AsyncIterator<Channel> {
    return {
      next: (): Promise<IteratorResult<Channel>> => {
        const ch = this.#items.shift();
        if (ch) return Promise.resolve({ value: ch, done: false });
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((r) => this.#waiters.push(r));
      },
      return: (): Promise<IteratorResult<Channel>> =>
        Promise.resolve({ value: undefined, done: true }),
    };
  }
}
