/**
 * SSH client limits and timings: {@link DEFAULT_SSH_CLIENT_CONFIG} and
 * {@link verifySshClientConfig}.
 *
 * @module
 */

import { positiveInt } from "../channel/config.ts";

/** Limits and timeouts of an SSH client connection. */
export interface SshClientConfig {
  /** Guards against a server that accepts TCP but never answers the SYN. */
  readonly connectTimeoutMs: number;
  /** Guards against a server that stalls the version exchange, key exchange or authentication. */
  readonly handshakeTimeoutMs: number;
  /** Guards against a server that never answers a CHANNEL_OPEN. */
  readonly openTimeoutMs: number;
  /** How often we send keepalive@openssh.com; 0 turns probes off. */
  readonly keepaliveIntervalMs: number;
  /** Guards against a half-dead connection: a probe unanswered this long kills it. */
  readonly keepaliveTimeoutMs: number;
  /** Receive window we grant each channel (bytes); bounds per-channel memory. */
  readonly receiveWindow: number;
  /** Largest CHANNEL_DATA payload we accept. */
  readonly maxPacketSize: number;
  /** Largest binary packet we accept (packet_length). */
  readonly maxPacketLength: number;
  /** Re-key after this many bytes in either direction. */
  readonly rekeyBytes: number;
  /** Re-key after this many packets in either direction (keeps sequence numbers far from 2^32). */
  readonly rekeyPackets: number;
  /** Re-key after this long. */
  readonly rekeyIntervalMs: number;
  /** Refuse servers without strict key exchange (the Terrapin defence). */
  readonly requireStrictKex: boolean;
  /** First reconnect delay after a failed connect (SshTunnelDialer). */
  readonly reconnectMinDelayMs: number;
  /** Largest reconnect delay (SshTunnelDialer). */
  readonly reconnectMaxDelayMs: number;
}

/** Defaults: 2 MiB windows like OpenSSH, strict kex required, re-key at 1 GiB / 2^28 packets / 1 h. */
export const DEFAULT_SSH_CLIENT_CONFIG: SshClientConfig = Object.freeze({
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 20_000,
  openTimeoutMs: 10_000,
  keepaliveIntervalMs: 15_000,
  keepaliveTimeoutMs: 30_000,
  receiveWindow: 2 * 1024 * 1024,
  maxPacketSize: 32 * 1024,
  maxPacketLength: 256 * 1024,
  rekeyBytes: 1024 * 1024 * 1024,
  rekeyPackets: 2 ** 28,
  rekeyIntervalMs: 3_600_000,
  requireStrictKex: true,
  reconnectMinDelayMs: 100,
  reconnectMaxDelayMs: 30_000,
});

/** Merge over the defaults and check every field; throws RangeError naming the field. */
export function verifySshClientConfig(partial: Partial<SshClientConfig> = {}): SshClientConfig {
  const c = { ...DEFAULT_SSH_CLIENT_CONFIG, ...partial };
  positiveInt("connectTimeoutMs", c.connectTimeoutMs, 1, 3_600_000);
  positiveInt("handshakeTimeoutMs", c.handshakeTimeoutMs, 1, 3_600_000);
  positiveInt("openTimeoutMs", c.openTimeoutMs, 1, 3_600_000);
  positiveInt("keepaliveIntervalMs", c.keepaliveIntervalMs, 0, 86_400_000);
  positiveInt("keepaliveTimeoutMs", c.keepaliveTimeoutMs, 1, 86_400_000);
  positiveInt("receiveWindow", c.receiveWindow, 64 * 1024, 2 ** 31);
  positiveInt("maxPacketSize", c.maxPacketSize, 1024, 200 * 1024);
  positiveInt("maxPacketLength", c.maxPacketLength, 35_000, 16 * 1024 * 1024);
  if (c.maxPacketLength < c.maxPacketSize + 1024) {
    throw new RangeError(
      `maxPacketLength must exceed maxPacketSize by 1024, got ${c.maxPacketLength}`,
    );
  }
  positiveInt("rekeyBytes", c.rekeyBytes, 1024 * 1024, 2 ** 40);
  positiveInt("rekeyPackets", c.rekeyPackets, 1024, 2 ** 31);
  positiveInt("rekeyIntervalMs", c.rekeyIntervalMs, 1000, 86_400_000);
  if (typeof c.requireStrictKex !== "boolean") {
    throw new RangeError(`requireStrictKex must be a boolean, got ${c.requireStrictKex}`);
  }
  positiveInt("reconnectMinDelayMs", c.reconnectMinDelayMs, 0, 3_600_000);
  positiveInt("reconnectMaxDelayMs", c.reconnectMaxDelayMs, c.reconnectMinDelayMs, 3_600_000);
  return c;
}
