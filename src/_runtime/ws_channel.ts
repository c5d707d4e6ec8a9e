/**
 * A `ws` WebSocket over an already-upgraded spokewire {@link Channel} (a verified
 * TLS channel): the HTTP upgrade is done by the caller, this only runs the
 * WebSocket framing. `ws` works over any `node:stream` Duplex in both runtimes.
 *
 * @module
 */

import WebSocket from "ws";
import type { Channel } from "../channel/types.ts";
import { channelToDuplex } from "./channel_duplex.ts";

/** Options of {@link webSocketOverChannel}. */
export interface WebSocketOverChannelOptions {
  /** `"client"` masks outgoing frames and expects unmasked ones; `"server"` the reverse. */
  readonly role: "client" | "server";
  /** Largest incoming message; larger frames close the socket (1009). */
  readonly maxPayload: number;
}

/**
 * Run WebSocket framing over `channel`, whose HTTP upgrade has completed;
 * `head` holds bytes already read past the upgrade head. The socket owns the
 * channel: when the socket closes, the channel is closed (or aborted if the
 * socket failed).
 */
export function webSocketOverChannel(
  channel: Channel,
  head: Uint8Array,
  options: WebSocketOverChannelOptions,
): WebSocket {
  const duplex = channelToDuplex(channel);
  // `new WebSocket(null)` is how `ws` builds the server side of an upgrade; the
  // client side of a hand-made upgrade only differs in masking.
  const ws = new WebSocket(null as unknown as string, undefined, {});
  (ws as unknown as { _isServer: boolean })._isServer = options.role === "server";
  let failed = false;
  ws.on("error", () => {
    failed = true;
  });
  ws.on("close", (code: number) => {
    if (failed || code === 1006) channel.abort(new Error(`WebSocket closed (code ${code})`));
    else channel.close().catch(() => channel.abort());
  });
  duplex.on("error", () => {
    failed = true;
  });
  const setSocket = (
    ws as unknown as {
      setSocket(s: unknown, h: Uint8Array, o: Record<string, unknown>): void;
    }
  ).setSocket.bind(ws);
  setSocket(duplex, head, {
    maxPayload: options.maxPayload,
    skipUTF8Validation: false,
    allowSynchronousEvents: true,
  });
  return ws;
}
