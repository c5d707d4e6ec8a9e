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

/** Smallest and largest buffer an {@link Outbox} allocates at a time. */
const OUTBOX_MIN = 16 * 1024;
const OUTBOX_MAX = 512 * 1024;

/**
 * Sealed packets waiting for the socket, written back to back into large
 * buffers: each packet is sealed straight into its place, and the socket gets
 * a few large writes instead of three small ones per packet. Bytes handed out
 * by {@link Outbox.take} are never written again (the socket may still hold
 * them); the space after them is.
 */
export class Outbox {
  #buf = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #done: Uint8Array[] = [];
  #bytes = 0;
  #block = OUTBOX_MIN;

  /** Bytes written and not yet taken. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Where the next {@link Outbox.reserve}d bytes start in the buffer it returns. */
  get end(): number {
    return this.#end;
  }

  /** A buffer with `n` free bytes from {@link Outbox.end}; {@link Outbox.commit} them once written. */
  reserve(n: number): Uint8Array {
    if (this.#buf.byteLength - this.#end >= n) return this.#buf;
    if (this.#end > this.#start) this.#done.push(this.#buf.subarray(this.#start, this.#end));
    this.#buf = new Uint8Array(Math.max(n, this.#block));
    this.#start = 0;
    this.#end = 0;
    return this.#buf;
  }

  /** The `n` reserved bytes are written. */
  commit(n: number): void {
    this.#end += n;
    this.#bytes += n;
  }

  /** Queue raw bytes (the identification line). */
  append(b: Uint8Array): void {
    this.reserve(b.byteLength).set(b, this.#end);
    this.commit(b.byteLength);
  }

  /** Everything written since the last take, in order. */
  take(): Uint8Array[] {
    const out = this.#done;
    this.#done = [];
    if (this.#end > this.#start) {
      out.push(this.#buf.subarray(this.#start, this.#end));
      this.#start = this.#end;
    }
    // Size the next buffer for the traffic just seen, and let a quiet
    // connection drop a big one instead of holding it while idle.
    this.#block = Math.min(OUTBOX_MAX, Math.max(OUTBOX_MIN, this.#bytes * 4));
    this.#bytes = 0;
    if (this.#buf.byteLength > 2 * this.#block) {
      this.#buf = new Uint8Array(0);
      this.#start = 0;
      this.#end = 0;
    }
    return out;
  }
}

/** Frames and protects outgoing payloads; owns the outgoing sequence number. */
export class PacketEncoder {
  sealer: PacketSealer = NONE_SEALER;
  /** Sequence number of the next packet (uint32, wraps). */
  seq = 0;

  /**
   * Frame `payload` (followed by `body`, if given) and seal it into `out`.
   * The body is read once, by the cipher, and never copied before that.
   */
  encodeInto(out: Outbox, payload: Uint8Array, body?: Uint8Array): void {
    const s = this.sealer;
    const bs = s.blockSize;
    const bodyLen = body?.byteLength ?? 0;
    const unpadded = 1 + payload.byteLength + bodyLen + (s.lengthOutside ? 0 : 4);
    let pad = bs - (unpadded % bs);
    if (pad < MIN_PADDING) pad += bs;
    const packetLength = 1 + payload.byteLength + bodyLen + pad;
    const total = 4 + packetLength + s.macLength;
    const buf = out.reserve(total);
    const at = out.end;
    buf[at] = packetLength >>> 24;
    buf[at + 1] = (packetLength >>> 16) & 0xff;
    buf[at + 2] = (packetLength >>> 8) & 0xff;
    buf[at + 3] = packetLength & 0xff;
    buf[at + 4] = pad;
    buf.set(payload, at + 5);
    const headEnd = at + 5 + payload.byteLength;
    if (body) {
      // The padding goes to its final place; the body's ciphertext lands between.
      const padAt = headEnd + bodyLen;
      buf.set(randomPadding(pad), padAt);
      s.seal(this.seq, buf, at, [
        buf.subarray(at + 4, headEnd),
        body,
        buf.subarray(padAt, padAt + pad),
      ]);
    } else {
      buf.set(randomPadding(pad), headEnd);
      s.seal(this.seq, buf, at, [buf.subarray(at + 4, headEnd + pad)]);
    }
    out.commit(total);
    this.seq = (this.seq + 1) >>> 0;
  }

  /** Frame `payload` (followed by `body`, if given); the result is the bytes to write, in order. */
  encode(payload: Uint8Array, body?: Uint8Array): Uint8Array[] {
    const out = new Outbox();
    this.encodeInto(out, payload, body);
    return out.take();
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
