/**
 * A `ws` WebSocket over an already-upgraded spokewire {@link Channel} (a verified
 * TLS channel): the HTTP upgrade is done by the caller, this only runs the
 * WebSocket framing.
 *
 * Where the channel can hand over its socket (TLS on the TCP socket itself: Node),
 * `ws` runs on that `node:tls` socket directly, as it does for its own upgrades.
 * Elsewhere (TLS over a Duplex under Deno, TLS over any Channel) it runs on a
 * Duplex made of the channel's streams: `ws` works over any `node:stream` Duplex
 * in both runtimes.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type * as net from "node:net";
import type { Duplex } from "node:stream";
import WebSocket from "ws";
import type { Channel } from "../channel/types.ts";
import { channelToDuplex } from "./channel_duplex.ts";
import { type SocketHandoff, takeSocket } from "./socket_handoff.ts";

/** Options of {@link webSocketOverChannel}. */
export interface WebSocketOverChannelOptions {
  /** `"client"` masks outgoing frames and expects unmasked ones; `"server"` the reverse. */
  readonly role: "client" | "server";
  /** Largest incoming message; larger frames close the socket (1009). */
  readonly maxPayload: number;
  /**
   * Guards against a peer that neither answers our close frame nor closes: the socket
   * is destroyed this long after `close()` (or a refused frame) sent ours. Default
   * {@link DEFAULT_WS_CLOSE_TIMEOUT_MS}.
   */
  readonly closeTimeoutMs?: number;
  /**
   * Client only: mask every frame with the key 00 00 00 00 instead of a fresh random
   * one (`ws` then skips both the masking pass and the copy it masks into). Only for a
   * connection whose frames nobody but the two endpoints can read, where the peer agreed
   * (SPEC.md of konnectivity, section 1, "Masking"). Default false: random keys.
   */
  readonly zeroMaskingKeys?: boolean;
}

/**
 * How long a closing WebSocket waits for the peer's close before destroying its socket
 * (`ws`'s own default is 30 s; ours matches the server's `closeTimeoutMs`).
 */
export const DEFAULT_WS_CLOSE_TIMEOUT_MS = 5_000;

/**
 * Run WebSocket framing over `channel`, whose HTTP upgrade has completed;
 * `head` holds bytes already read past the upgrade head. The socket owns the
 * channel: when the socket closes, the channel is closed (or aborted if the
 * socket failed).
 */
export async function webSocketOverChannel(
  channel: Channel,
  head: Uint8Array,
  options: WebSocketOverChannelOptions,
): Promise<WebSocket> {
  if (options.zeroMaskingKeys && options.role !== "client") {
    throw new TypeError("zeroMaskingKeys applies to the client role only (servers do not mask)");
  }
  const handoff = await takeSocket(channel);
  return handoff === undefined
    ? overDuplex(channel, head, options)
    : overSocket(handoff, head, options);
}

/** `ws` on the channel's own socket. */
function overSocket(
  handoff: SocketHandoff,
  head: Uint8Array,
  options: WebSocketOverChannelOptions,
): WebSocket {
  const socket = handoff.socket as unknown as net.Socket;
  let failed = false;
  // Before ws's own listener: a failed socket is reset (the channel's abort), as
  // the channel would have done, so the peer sees the failure as one.
  const onError = (err: Error): void => {
    failed = true;
    handoff.finish(err);
  };
  socket.once("error", onError);
  const ws = start(socket, Buffer.concat([head, ...handoff.unread]), options);
  ws.on("error", () => {
    failed = true;
  });
  ws.on("close", (code: number) => {
    socket.off("error", onError);
    if (failed || code === 1006) handoff.finish(new Error(`WebSocket closed (code ${code})`));
    else handoff.finish();
  });
  socket.resume();
  return ws;
}

/** `ws` on a Duplex over the channel's streams. */
function overDuplex(
  channel: Channel,
  head: Uint8Array,
  options: WebSocketOverChannelOptions,
): WebSocket {
  const duplex = channelToDuplex(channel);
  let failed = false;
  duplex.on("error", () => {
    failed = true;
  });
  const ws = start(duplex, head, options);
  ws.on("error", () => {
    failed = true;
  });
  ws.on("close", (code: number) => {
    if (failed || code === 1006) channel.abort(new Error(`WebSocket closed (code ${code})`));
    else channel.close().catch(() => channel.abort());
  });
  return ws;
}

function start(
  stream: Duplex | net.Socket,
  head: Uint8Array,
  options: WebSocketOverChannelOptions,
): WebSocket {
  // `new WebSocket(null)` is how `ws` builds the server side of an upgrade; the
  // client side of a hand-made upgrade only differs in masking. `ws` takes no
  // defaults here (its server passes its own options): without `closeTimeout` the
  // close timer is `setTimeout(destroy, undefined)`, which destroys the socket as soon
  // as a close frame is queued, before it is flushed. A frame refused from its header
  // (1009) then reached the peer as a bare reset.
  // (`closeTimeout` is missing from @types/ws; ws 8 reads it.)
  const wsOptions = { closeTimeout: options.closeTimeoutMs ?? DEFAULT_WS_CLOSE_TIMEOUT_MS };
  const ws = new WebSocket(
    null as unknown as string,
    undefined,
    wsOptions as WebSocket.ClientOptions,
  );
  (ws as unknown as { _isServer: boolean })._isServer = options.role === "server";
  const setSocket = (
    ws as unknown as {
      setSocket(s: unknown, h: Uint8Array, o: Record<string, unknown>): void;
    }
  ).setSocket.bind(ws);
  setSocket(stream, head, {
    maxPayload: options.maxPayload,
    skipUTF8Validation: false,
    allowSynchronousEvents: true,
    // `ws` calls this for each frame it masks; an all-zero key makes it send the
    // payload as it is (no XOR pass, no copy), and the peer's `ws` skip the unmasking.
    ...(options.zeroMaskingKeys ? { generateMask: zeroMaskingKey } : {}),
  });
  return ws;
}

/** `ws`'s `generateMask` for {@link WebSocketOverChannelOptions.zeroMaskingKeys}. */
function zeroMaskingKey(key: Uint8Array): void {
  key.fill(0);
}
