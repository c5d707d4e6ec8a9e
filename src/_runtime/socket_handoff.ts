/**
 * Handing a socket channel's socket itself to a new owner (a `ws` WebSocket
 * after a hand-made HTTP upgrade), so that owner reads and writes the
 * `node:tls` socket directly instead of going through the channel's Web
 * Streams and a Duplex made of them (`channel_duplex.ts`).
 *
 * Only a channel that has such a socket offers it (a TLS channel whose TLS
 * runs on the TCP socket itself: Node). Everything else (TLS over a Duplex
 * under Deno, TLS over any Channel, memory pairs) answers `undefined`, and the
 * caller keeps using the channel.
 *
 * @module
 */

import type { Channel } from "../channel/types.ts";
import type { HandedSocket } from "./net.ts";

/** The method a channel that can hand over its socket has, under this key. */
export const TAKE_SOCKET: unique symbol = Symbol("spokewire.takeSocket");

/** A socket taken from its channel (see {@link takeSocket}). */
export interface SocketHandoff {
  /** The socket, paused; the channel no longer reads or writes it. */
  readonly socket: HandedSocket;
  /** Bytes the channel had received that nobody read yet, oldest first: they come before the socket's. */
  readonly unread: readonly Uint8Array[];
  /**
   * The new owner is done with the socket: it closed cleanly (no error), or failed
   * (`error`: the channel is aborted, which resets the transport if still open).
   * Settles the channel's `closed`.
   */
  finish(error?: Error): void;
}

/** A channel that can hand over its socket. */
export interface SocketHandoffSource {
  [TAKE_SOCKET](): Promise<SocketHandoff | undefined>;
}

/**
 * Take `channel`'s socket, or `undefined` when it has none to give (not a socket
 * channel, TLS over a stream, not idle: a read or write in progress, a stream
 * locked, either direction ended). Afterwards the channel's streams carry no more
 * bytes; `abort()` still resets the socket. Rejects if the channel fails meanwhile.
 */
export function takeSocket(channel: Channel): Promise<SocketHandoff | undefined> {
  const take = (channel as Partial<SocketHandoffSource>)[TAKE_SOCKET];
  return typeof take === "function" ? take.call(channel) : Promise.resolve(undefined);
}
