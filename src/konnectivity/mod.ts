/**
 * Konnectivity over WebSocket, part 1: the wire protocol (SPEC.md), its codec,
 * and the multiplexing session with per-connection flow control.
 *
 * @module
 */

export * from "./agent.ts";
export * from "./agent_claims.ts";
export * from "./agent_routes.ts";
export * from "./codec.ts";
export * from "./config.ts";
export * from "./connect_frontend.ts";
export * from "./memory_pipe.ts";
export * from "./packet.ts";
export * from "./pipe.ts";
export * from "./relay.ts";
export * from "./server.ts";
export * from "./session.ts";
export * from "./timers.ts";
export * from "./tunnel_channel.ts";
export * from "./tunnel_listener.ts";
export * from "./ws_pipe.ts";
