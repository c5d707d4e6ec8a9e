export * from "./accept_queue.ts";
export * from "./base_channel.ts";
export * from "./config.ts";
export * from "./errors.ts";
export * from "./memory.ts";
export * from "./state.ts";
export * from "./types.ts";
