export * from "./socket_channel.ts";
export * from "./tcp.ts";
