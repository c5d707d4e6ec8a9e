/**
 * The SSH binary packet protocol (RFC 4253 §6): framing, padding, length caps
 * and sequence numbers that wrap at 2^32. Protection comes from a
 * {@link PacketSealer}/{@link PacketOpener} that the transport swaps at NEWKEYS.
 *
 * @module
 */

import { ProtocolError } from "../channel/errors.ts";
import { NONE_OPENER, NONE_SEALER, type PacketOpener, type PacketSealer } from "./cipher.ts";

/** Largest packet_length we accept (OpenSSH's PACKET_MAX_SIZE, 256 KiB). */
export const DEFAULT_MAX_PACKET_LENGTH = 256 * 1024;
/** RFC 4253 §6: at least four bytes of padding. */
export const MIN_PADDING = 4;

const POOL_SIZE = 4096;
let pool = new Uint8Array(0);
let poolPos = POOL_SIZE;

function randomPadding(n: number): Uint8Array {
  if (poolPos + n > pool.byteLength) {
    pool = crypto.getRandomValues(new Uint8Array(POOL_SIZE));
    poolPos = 0;
  }
  const out = pool.subarray(poolPos, poolPos + n);
  poolPos += n;
  return out;
}

/** Frames and protects outgoing payloads; owns the outgoing sequence number. */
export class PacketEncoder {
  sealer: PacketSealer = NONE_SEALER;
  /** Sequence number of the next packet (uint32, wraps). */
  seq = 0;

  /** Frame `payload` (followed by `body`, if given); the result is the bytes to write, in order. */
  encode(payload: Uint8Array, body?: Uint8Array): Uint8Array[] {
    const bs = this.sealer.blockSize;
    const bodyLen = body?.byteLength ?? 0;
    const unpadded = 1 + payload.byteLength + bodyLen + (this.sealer.lengthOutside ? 0 : 4);
    let pad = bs - (unpadded % bs);
    if (pad < MIN_PADDING) pad += bs;
    const packetLength = 1 + payload.byteLength + bodyLen + pad;
    const packet = new Uint8Array(4 + packetLength);
    new DataView(packet.buffer).setUint32(0, packetLength);
    packet[4] = pad;
    packet.set(payload, 5);
    if (body) packet.set(body, 5 + payload.byteLength);
    packet.set(randomPadding(pad), 5 + payload.byteLength + bodyLen);
    const out = this.sealer.seal(this.seq, packet);
    this.seq = (this.seq + 1) >>> 0;
    return out;
  }
}

/** Reassembles, authenticates and decrypts incoming packets; owns the incoming sequence number. */
export class PacketDecoder {
  opener: PacketOpener = NONE_OPENER;
  /** Sequence number of the next packet (uint32, wraps). */
  seq = 0;
  readonly maxPacketLength: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #length = -1;

  constructor(maxPacketLength = DEFAULT_MAX_PACKET_LENGTH) {
    this.maxPacketLength = maxPacketLength;
  }

  /** Bytes received and not yet decoded. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Add received bytes. */
  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
  }

  /** The first `n` buffered bytes as one array, copying only when they span chunks. */
  #contiguous(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let o = 0;
    let i = 0;
    while (o < n) {
      const c = this.#chunks[i]!;
      const take = Math.min(c.byteLength, n - o);
      out.set(c.subarray(0, take), o);
      o += take;
      if (take === c.byteLength) i++;
      else {
        // Keep the copy as the head so the bytes are not copied again.
        this.#chunks[i] = c.subarray(take);
      }
    }
    this.#chunks.splice(0, i, out);
    return out;
  }

  #consume(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const c = this.#chunks[0]!;
      if (c.byteLength <= n) {
        n -= c.byteLength;
        this.#chunks.shift();
      } else {
        this.#chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }

  /**
   * The next payload, or undefined when more bytes are needed. Throws
   * {@link ProtocolError} on a bad length, padding or MAC; after a throw the
   * decoder is unusable (the connection must be torn down).
   */
  next(): Uint8Array | undefined {
    const o = this.opener;
    if (this.#length < 0) {
      if (this.#buffered < 4) return undefined;
      const len = o.length(this.seq, this.#contiguous(4));
      if (len < 5 || len > this.maxPacketLength) {
        throw new ProtocolError(`bad packet length ${len} (limit ${this.maxPacketLength})`);
      }
      if ((len + (o.lengthOutside ? 0 : 4)) % o.blockSize !== 0) {
        throw new ProtocolError(
          `packet length ${len} is not a multiple of the block size ${o.blockSize}`,
        );
      }
      this.#length = len;
    }
    const total = 4 + this.#length + o.macLength;
    if (this.#buffered < total) return undefined;
    const whole = this.#contiguous(total);
    const body = o.open(this.seq, whole, this.#length);
    if (body === undefined) {
      throw new ProtocolError(
        `packet ${this.seq} failed authentication (MAC or AEAD tag mismatch)`,
      );
    }
    this.#consume(total);
    this.#length = -1;
    this.seq = (this.seq + 1) >>> 0;
    const pad = body[0]!;
    if (pad < MIN_PADDING || pad + 1 > body.byteLength) {
      throw new ProtocolError(`bad padding length ${pad} in a packet of ${body.byteLength} bytes`);
    }
    const payload = body.subarray(1, body.byteLength - pad);
    if (payload.byteLength === 0) throw new ProtocolError("empty packet payload");
    return payload;
  }
}
