/**
 * Konnectivity session configuration.
 *
 * @module
 */

import { type ChannelConfig, positiveInt, verifyChannelConfig } from "../channel/config.ts";
import { KONNECTIVITY_MAX_MESSAGE_SIZE } from "./codec.ts";
import { KONNECTIVITY_MAX_WINDOW } from "./packet.ts";

/** Limits and timeouts of a {@link KonnectivitySession}. */
export interface SessionConfig {
  /**
   * Receive window per connection and direction: the most bytes a peer may send
   * on one connection that this side's reader has not consumed. It is also the
   * connection's receive buffer, so a stalled reader holds at most this much.
   */
  readonly connectionWindow: number;
  /**
   * Largest a connection's receive window may grow to. Windows start at
   * `connectionWindow` and double while the reader consumes a whole window in
   * under two round trips (the window, not the reader, is the bottleneck).
   * Equal to `connectionWindow`: no auto-tuning.
   */
  readonly maxConnectionWindow: number;
  /**
   * How much auto-tuning may add, summed over all connections, above their
   * initial `connectionWindow`s. Bounds session memory together with
   * `maxConnections x connectionWindow`.
   */
  readonly windowGrowthBudget: number;
  /** Largest DATA payload put in one packet. */
  readonly maxDataPerPacket: number;
  /** Largest message accepted from the peer; larger is a protocol error. */
  readonly maxMessageSize: number;
  /** Live connections plus dials being answered, per session; more dials are refused. */
  readonly maxConnections: number;
  /** Outgoing dials waiting for an answer (cancelled ones included); more wait in the queue. */
  readonly maxPendingDials: number;
  /**
   * Outgoing dials waiting for a free slot (under `maxPendingDials` and
   * `maxConnections`), each until its own timeout; beyond this a dial is refused
   * at once with {@link DialBusyError}. 0: no queue. About 1.5 KiB per queued dial
   * (measured, the caller's promise included): 6 MiB at the default.
   */
  readonly maxQueuedDials: number;
  /** Guards against a peer that never answers a DIAL_REQ (the caller gets `TIMEOUT`). */
  readonly dialTimeoutMs: number;
  /** Guards against an `onDial` handler that never decides (the dialer gets an error). */
  readonly dialHandlerTimeoutMs: number;
  /** How often a PING is sent. */
  readonly keepaliveIntervalMs: number;
  /** Guards against a dead peer or link: nothing received this long after a PING ends the session. */
  readonly keepaliveTimeoutMs: number;
  /**
   * Guards against a peer that floods requests while not reading: outgoing bytes
   * queued beyond the pipe's high-water mark past which the session goes away (OVERLOAD).
   */
  readonly maxControlBacklog: number;
  /** Buffering and close timing of each tunneled Channel (its read buffer is `connectionWindow`). */
  readonly channel: Partial<Omit<ChannelConfig, "readHighWaterMark">>;
}

/**
 * Defaults: 256 KiB window (auto-tuned up to 16 MiB, 64 MiB of growth per session), 64 KiB packets, 1 MiB messages, 1024 connections,
 * 256 pending dials and 4096 queued, 30 s dial and dial-handler timeouts, keepalive every 30 s
 * with a 15 s timeout, 1 MiB control backlog.
 */
export const DEFAULT_SESSION_CONFIG: SessionConfig = Object.freeze({
  connectionWindow: 256 * 1024,
  maxConnectionWindow: 16 * 1024 * 1024,
  windowGrowthBudget: 64 * 1024 * 1024,
  maxDataPerPacket: 64 * 1024,
  maxMessageSize: 1024 * 1024,
  maxConnections: 1024,
  maxPendingDials: 256,
  maxQueuedDials: 4096,
  dialTimeoutMs: 30_000,
  dialHandlerTimeoutMs: 30_000,
  keepaliveIntervalMs: 30_000,
  keepaliveTimeoutMs: 15_000,
  maxControlBacklog: 1024 * 1024,
  channel: Object.freeze({}),
});

/** Bytes a packet adds around a DATA payload, at most. */
const DATA_PACKET_OVERHEAD = 32;

/**
 * Merge `partial` over {@link DEFAULT_SESSION_CONFIG} and check every field;
 * throws `RangeError` naming the field and its value.
 *
 * @example
 * ```ts
 * import { verifySessionConfig } from "./config.ts";
 * const c = verifySessionConfig({ connectionWindow: 65536 });
 * if (c.maxConnections !== 1024) throw new Error("defaults lost");
 * ```
 */
export function verifySessionConfig(partial: Partial<SessionConfig> = {}): SessionConfig {
  const c: SessionConfig = { ...DEFAULT_SESSION_CONFIG, ...partial };
  positiveInt("connectionWindow", c.connectionWindow, 1024, KONNECTIVITY_MAX_WINDOW);
  positiveInt(
    "maxConnectionWindow",
    c.maxConnectionWindow,
    c.connectionWindow,
    KONNECTIVITY_MAX_WINDOW,
  );
  positiveInt("windowGrowthBudget", c.windowGrowthBudget, 0, 16 * 1024 * 1024 * 1024);
  positiveInt("maxMessageSize", c.maxMessageSize, 256, KONNECTIVITY_MAX_MESSAGE_SIZE);
  positiveInt("maxDataPerPacket", c.maxDataPerPacket, 1, c.maxMessageSize - DATA_PACKET_OVERHEAD);
  positiveInt("maxConnections", c.maxConnections, 1, 1_000_000);
  positiveInt("maxPendingDials", c.maxPendingDials, 1, 1_000_000);
  positiveInt("maxQueuedDials", c.maxQueuedDials, 0, 1_000_000);
  positiveInt("dialTimeoutMs", c.dialTimeoutMs, 1, 24 * 3600 * 1000);
  positiveInt("dialHandlerTimeoutMs", c.dialHandlerTimeoutMs, 1, 24 * 3600 * 1000);
  positiveInt("keepaliveIntervalMs", c.keepaliveIntervalMs, 1, 24 * 3600 * 1000);
  positiveInt("keepaliveTimeoutMs", c.keepaliveTimeoutMs, 1, 24 * 3600 * 1000);
  positiveInt("maxControlBacklog", c.maxControlBacklog, 4096, 1024 * 1024 * 1024);
  if (typeof c.channel !== "object" || c.channel === null) {
    throw new RangeError(`channel must be an object, got ${c.channel}`);
  }
  if ("readHighWaterMark" in c.channel) {
    throw new RangeError("channel.readHighWaterMark is set by connectionWindow; leave it out");
  }
  verifyChannelConfig(c.channel);
  return c;
}
