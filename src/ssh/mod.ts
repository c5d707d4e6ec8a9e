/**
 * SSH tunnels: a clean-room SSH client (transport, publickey auth,
 * direct-tcpip channels) and the {@link SshTunnelDialer}.
 *
 * @module
 */

export * from "./config.ts";
export * from "./connection.ts";
export * from "./dialer.ts";
export { fingerprintSha256 as sshKeyFingerprint } from "./host_key.ts";
export * from "./host_key_policy.ts";
export * from "./known_hosts.ts";
export * from "./private_key.ts";
