/**
 * Channel buffering and timing configuration.
 *
 * @module
 */

/** Limits every channel keeps. */
export interface ChannelConfig {
  /** Bytes the readable buffers before the transport is paused (backpressure to the peer). */
  readonly readHighWaterMark: number;
  /** Bytes the writable queues before `writer.ready` waits. */
  readonly writeHighWaterMark: number;
  /** Guards against a peer that never half-closes: `close()` resets after this long. */
  readonly closeTimeoutMs: number;
}

/** Defaults: 1 MiB read buffer, 64 KiB write queue, 5 s graceful close. */
export const DEFAULT_CHANNEL_CONFIG: ChannelConfig = Object.freeze({
  readHighWaterMark: 1024 * 1024,
  writeHighWaterMark: 64 * 1024,
  closeTimeoutMs: 5_000,
});

/** Merge `partial` over the defaults and check every field; throws `RangeError` naming the field. */
export function verifyChannelConfig(partial: Partial<ChannelConfig> = {}): ChannelConfig {
  const c = { ...DEFAULT_CHANNEL_CONFIG, ...partial };
  positiveInt("readHighWaterMark", c.readHighWaterMark, 1, 256 * 1024 * 1024);
  positiveInt("writeHighWaterMark", c.writeHighWaterMark, 1, 256 * 1024 * 1024);
  positiveInt("closeTimeoutMs", c.closeTimeoutMs, 1, 24 * 3600 * 1000);
  return c;
}

/** Throw a RangeError unless `value` is an integer in [min, max]. */
export function positiveInt(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${field} must be an integer in [${min}, ${max}], got ${value}`);
  }
}
