/**
 * Typed errors. One base class with a stable `code`; subclasses by what the
 * caller does about the failure. Nobody branches on message text.
 *
 * @module
 */

/** Every stable error code spokewire produces. Documented in the README. */
export type ErrorCode =
  | "PEER_VERIFICATION_FAILED"
  | "DIAL_FAILED"
  | "LISTEN_FAILED"
  | "CHANNEL_RESET"
  | "CHANNEL_CLOSED"
  | "PROTOCOL_ERROR"
  | "TIMEOUT"
  | "ABORTED"
  | "AUTH_FAILED"
  | "CSR_DENIED"
  | "MALFORMED_INPUT";

/**
 * Why a peer (or a certificate, CSR or key) failed verification.
 * The set is closed: callers may switch over it.
 */
export type VerificationReason =
  | "expired"
  | "not-yet-valid"
  | "untrusted-root"
  | "name-mismatch"
  | "bad-eku"
  | "bad-key-usage"
  | "not-a-ca"
  | "path-length"
  | "bad-signature"
  | "weak-key"
  | "weak-algorithm"
  | "malformed"
  | "unknown-critical-extension"
  | "chain-too-long"
  | "path-building-limit"
  | "fingerprint-mismatch"
  | "client-cert-missing"
  | "client-cert-refused"
  | "session-resumed"
  | "unauthorized"
  | "host-key-mismatch"
  | "host-key-unknown"
  | "host-key-revoked"
  | "unsupported";

const BRAND: unique symbol = Symbol.for("spokewire.error");

/**
 * Base class of every error spokewire throws on purpose. `instanceof` works
 * across two copies of the package (the brand is a registered symbol).
 *
 * @example
 * ```ts
 * import { SpokewireError, ChannelResetError } from "../../mod.ts";
 * const e = new ChannelResetError("peer reset the connection");
 * if (e instanceof SpokewireError && e.code !== "CHANNEL_RESET") throw new Error("unreachable");
 * ```
 */
export class SpokewireError extends Error {
  /** The stable code; see the README's table. */
  readonly code: ErrorCode;
  /** Code this class stands for; subclasses override it. */
  static readonly CODE: ErrorCode | undefined = undefined;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== "object" || value === null) return false;
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if ((value as { [BRAND]?: unknown })[BRAND] !== true) return false;
    const code = (this as typeof SpokewireError).CODE;
    return code === undefined || (value as SpokewireError).code === code;
  }
}

/** The peer (or a certificate, key or CSR) failed verification. `reason` says why. */
export class PeerVerificationError extends SpokewireError {
  static override readonly CODE: ErrorCode = "PEER_VERIFICATION_FAILED";
  /** One of a documented set; switch over it, never over the message. */
  readonly reason: VerificationReason;
  constructor(reason: VerificationReason, message: string, options?: { cause?: unknown }) {
    super("PEER_VERIFICATION_FAILED", message, options);
    this.reason = reason;
  }
}

/** A dial could not reach or open the target. */
export class DialError extends SpokewireError {
  static override readonly CODE: ErrorCode = "DIAL_FAILED";
  constructor(message: string, options?: { cause?: unknown }) {
    super("DIAL_FAILED", message, options);
  }
}

/** A listener could not bind. */
export class ListenError extends SpokewireError {
  static override readonly CODE: ErrorCode = "LISTEN_FAILED";
  constructor(message: string, options?: { cause?: unknown }) {
    super("LISTEN_FAILED", message, options);
  }
}

/** The channel was torn down by the peer or by a fault: data may be missing. */
export class ChannelResetError extends SpokewireError {
  static override readonly CODE: ErrorCode = "CHANNEL_RESET";
  constructor(message: string, options?: { cause?: unknown }) {
    super("CHANNEL_RESET", message, options);
  }
}

/** An operation on a channel (or one side of it) that was already closed. */
export class ChannelClosedError extends SpokewireError {
  static override readonly CODE: ErrorCode = "CHANNEL_CLOSED";
  constructor(message: string, options?: { cause?: unknown }) {
    super("CHANNEL_CLOSED", message, options);
  }
}

/** The peer broke the wire protocol (malformed frame, oversized length ...). */
export class ProtocolError extends SpokewireError {
  static override readonly CODE: ErrorCode = "PROTOCOL_ERROR";
  constructor(message: string, options?: { cause?: unknown }) {
    super("PROTOCOL_ERROR", message, options);
  }
}

/** A bounded wait ran out. `timeoutMs` names the limit. */
export class TimeoutError extends SpokewireError {
  static override readonly CODE: ErrorCode = "TIMEOUT";
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, options?: { cause?: unknown }) {
    super("TIMEOUT", message, options);
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's AbortSignal fired; `cause` is the signal's reason. */
export class AbortedError extends SpokewireError {
  static override readonly CODE: ErrorCode = "ABORTED";
  constructor(message: string, options?: { cause?: unknown }) {
    super("ABORTED", message, options);
  }
}

/** Authentication of this side was refused (SSH userauth, bootstrap token ...). */
export class AuthError extends SpokewireError {
  static override readonly CODE: ErrorCode = "AUTH_FAILED";
  constructor(message: string, options?: { cause?: unknown }) {
    super("AUTH_FAILED", message, options);
  }
}

/** A certificate signing request was denied by policy; `reason` is machine-readable. */
export class CsrDeniedError extends SpokewireError {
  static override readonly CODE: ErrorCode = "CSR_DENIED";
  readonly reason: string;
  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super("CSR_DENIED", message, options);
    this.reason = reason;
  }
}

/** Input (PEM, DER, a known_hosts line, a key file) could not be parsed. */
export class MalformedInputError extends SpokewireError {
  static override readonly CODE: ErrorCode = "MALFORMED_INPUT";
  constructor(message: string, options?: { cause?: unknown }) {
    super("MALFORMED_INPUT", message, options);
  }
}

/** Turn an AbortSignal's reason into an {@link AbortedError}. */
export function abortedError(signal: AbortSignal, what: string): AbortedError {
  return new AbortedError(`${what} was aborted`, { cause: signal.reason });
}
