/**
 * The core contract every transport implements. See DESIGN.md.
 *
 * @module
 */

import type { SpokewireError } from "./errors.ts";

/** How a peer was verified. */
export type PeerScheme = "x509" | "ssh-host-key" | "token" | "none";

/**
 * Who is on the other end. Only ever produced after verification succeeded;
 * scheme `"none"` means the transport verifies nothing (plain TCP, memory).
 */
export interface PeerIdentity {
  readonly scheme: PeerScheme;
  /** e.g. `system:node:node-1`, `SHA256:...`, an agent id, or an address for `"none"`. */
  readonly id: string;
  /** SHA-256 (hex) of the leaf certificate DER or the SSH key blob; empty for `"none"`. */
  readonly fingerprint: string;
  /** Groups (x509 O, token groups). */
  readonly groups?: readonly string[];
  /** Transport-specific verified details (SANs, chain, host key algorithm ...). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** How a channel ended. */
export type CloseKind =
  /** both sides half-closed and the transport was released cleanly */
  | "closed"
  /** this side called `abort()` */
  | "aborted"
  /** the peer reset or the transport failed; `error` says how */
  | "reset";

/** What `Channel.closed` resolves with. */
export interface CloseInfo {
  readonly kind: CloseKind;
  /** Set for `"aborted"` and `"reset"`. */
  readonly error?: SpokewireError;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

/**
 * A verified bidirectional byte stream.
 *
 * - `readable` ends (done) only when the peer half-closed; a fault errors it.
 * - `writable.close()` (or {@link Channel.closeWrite}) half-closes.
 * - `close()` is graceful and bounded in time; `abort()` resets now.
 */
export interface Channel extends AsyncDisposable {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly peer: PeerIdentity;
  /** Resolves exactly once, never rejects. */
  readonly closed: Promise<CloseInfo>;
  /** Send end-of-stream after every byte written so far; reading goes on. */
  closeWrite(): Promise<void>;
  /** Graceful: flush, half-close, wait (bounded) for the peer, release. */
  close(options?: { signal?: AbortSignal }): Promise<void>;
  /** Reset now; pending and future reads and writes on both ends fail. */
  abort(reason?: unknown): void;
}

/** Options every dial takes. */
export interface DialOptions {
  signal?: AbortSignal;
}

/** Something that opens channels to targets of type `T`. */
export interface Dialer<T> {
  dial(target: T, options?: DialOptions): Promise<Channel>;
}

/** Accepted channels, as an async iterable. `close()` ends the iteration; live channels go on. */
export interface Listener extends AsyncIterable<Channel>, AsyncDisposable {
  readonly addr: string;
  close(): Promise<void>;
}
