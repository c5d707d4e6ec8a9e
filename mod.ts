/**
 * spokewire: verified channels between a control plane and its nodes.
 *
 * @module
 */
export * from "./src/channel/mod.ts";
export * from "./src/konnectivity/mod.ts";
export * from "./src/pki/mod.ts";
export * from "./src/ssh/mod.ts";
export * from "./src/tcp/mod.ts";
export * from "./src/tls/mod.ts";
