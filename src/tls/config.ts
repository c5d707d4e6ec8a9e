/**
 * Options shared by the TLS dialer, listener and TLS-over-Channel, with their
 * defaults and checks.
 *
 * @module
 */

import type { ChannelConfig } from "../channel/config.ts";
import { positiveInt } from "../channel/config.ts";
import type { PeerIdentity } from "../channel/types.ts";

/** Certificate, key and trust anchors, all PEM. Swappable at run time (rotation). */
export interface TlsCredentials {
  /** Our certificate chain, leaf first. Required for a listener; optional for a dialer. */
  readonly cert?: string;
  /** The private key of `cert`. */
  readonly key?: string;
  /** The CA bundle the peer must chain to (one PEM string or several). Never empty. */
  readonly ca: string | readonly string[];
}

/** Where warnings go. */
export interface TlsLogger {
  warn(message: string): void;
}

/** Options every TLS endpoint takes. */
export interface TlsEndpointOptions {
  readonly credentials: TlsCredentials;
  /** Lowest TLS version accepted. Default `"TLSv1.3"`; `"TLSv1.2"` only on request. */
  readonly minVersion?: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list / TLS 1.3 suites (e.g. `"TLS_AES_128_GCM_SHA256"`). Default: runtime's. */
  readonly ciphers?: string;
  /** Also trust the runtime's bundled public roots. Default false: only `credentials.ca`. */
  readonly useSystemRoots?: boolean;
  /**
   * Accept only peers whose leaf certificate has one of these SHA-256
   * fingerprints (hex, colons and case ignored), in addition to the CA check.
   */
  readonly pinnedFingerprints?: readonly string[];
  /** Guards against a peer that stalls the handshake. Default {@link DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS}. */
  readonly handshakeTimeoutMs?: number;
  /**
   * THE ONLY WAY to turn verification off: accept any peer certificate (or none),
   * any name, any fingerprint. Logs a warning through `logger` on every use.
   * The peer identity then has scheme `"none"`.
   */
  readonly dangerouslySkipVerification?: boolean;
  /** Where warnings go. Default `console`. */
  readonly logger?: TlsLogger;
  /** Clock for the certificate validity check. Default `() => new Date()`. */
  readonly now?: () => Date;
  readonly config?: Partial<ChannelConfig>;
}

/** Options of the TLS client side (dialer, client over a Channel). */
export interface TlsClientOptions extends TlsEndpointOptions {
  /**
   * Maps an expected name (e.g. a node name) to the SAN values (DNS names or
   * IPs) its certificate may carry; any one must match. Names it returns
   * `undefined` for are matched as given.
   */
  readonly nameMap?: (name: string) => readonly string[] | undefined;
  /**
   * How long a dial may wait for a TLS 1.3 server's verdict on our certificate
   * (servers judge it after the handshake). The wait ends on a protocol signal:
   * the server's first session ticket or byte (accepted, at once), or its alert
   * or hang-up (refused: PEER_VERIFICATION_FAILED `client-cert-refused`). When the
   * window passes without a signal the server is taken as accepting (a later hang-up
   * is CHANNEL_RESET). Default {@link DEFAULT_TLS_REFUSAL_WINDOW_MS}: felt only with a
   * server that sends no TLS 1.3 tickets (spokewire's listener, OpenSSL and Go send
   * them once they accepted us), in both runtimes. `0` (opt-in) hands
   * the channel out at once and reads any close or failure before the server's first
   * byte as the refusal (`client-cert-refused` on the first read or write): right
   * for servers that speak first or judge at once, wrong for a peer that may close
   * before sending anything.
   */
  readonly refusalWindowMs?: number;
}

/** A listener's admission decision for a verified client. */
export type TlsAuthorizer = (peer: PeerIdentity) => boolean | Promise<boolean>;

/** Options of the TLS server side (listener, server over a Channel). */
export interface TlsServerOptions extends TlsEndpointOptions {
  /** Require and verify a client certificate. Default true. */
  readonly requireClientCert?: boolean;
  /** Admit or refuse a verified client. Refused clients are reset, never yielded. */
  readonly authorize?: TlsAuthorizer;
  /** Guards against an authorizer that never answers. Default {@link DEFAULT_TLS_AUTHORIZE_TIMEOUT_MS}. */
  readonly authorizeTimeoutMs?: number;
}

/** Default handshake timeout. */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default bound on waiting for the verdict of a server that sends no session tickets. */
export const DEFAULT_TLS_REFUSAL_WINDOW_MS = 200;
/** Default time an authorizer may take. */
export const DEFAULT_TLS_AUTHORIZE_TIMEOUT_MS = 5_000;

/** Normalize a fingerprint: hex lower case without separators. */
export function normalizeFingerprint(fp: string): string {
  return fp.replace(/[:\s]/g, "").toLowerCase();
}

/** Normalize a CA bundle to a list. */
export function caList(ca: string | readonly string[]): readonly string[] {
  return typeof ca === "string" ? [ca] : ca;
}

/** Check credentials; throws TypeError/RangeError naming the field. */
export function verifyTlsCredentials(c: TlsCredentials, needCert: boolean): void {
  if (typeof c !== "object" || c === null) throw new TypeError("credentials must be an object");
  const ca = caList(c.ca ?? []);
  if (ca.length === 0 || ca.some((x) => typeof x !== "string" || x === "")) {
    throw new RangeError("credentials.ca must hold at least one PEM certificate");
  }
  if ((c.cert === undefined) !== (c.key === undefined)) {
    throw new RangeError("credentials.cert and credentials.key go together");
  }
  if (needCert && c.cert === undefined) {
    throw new RangeError("credentials.cert and credentials.key are required for a TLS server");
  }
}

/** Check the options of any TLS endpoint; throws RangeError naming the field and value. */
export function verifyTlsEndpointOptions(o: TlsEndpointOptions, needCert: boolean): void {
  verifyTlsCredentials(o.credentials, needCert);
  if (o.minVersion !== undefined && o.minVersion !== "TLSv1.2" && o.minVersion !== "TLSv1.3") {
    throw new RangeError(`minVersion must be "TLSv1.2" or "TLSv1.3", got ${o.minVersion}`);
  }
  if (o.handshakeTimeoutMs !== undefined) {
    positiveInt("handshakeTimeoutMs", o.handshakeTimeoutMs, 1, 3_600_000);
  }
  for (const fp of o.pinnedFingerprints ?? []) {
    if (!/^[0-9a-f]{64}$/.test(normalizeFingerprint(fp))) {
      throw new RangeError(`pinnedFingerprints: not a SHA-256 hex fingerprint: ${fp}`);
    }
  }
  if (
    o.dangerouslySkipVerification !== undefined &&
    typeof o.dangerouslySkipVerification !== "boolean"
  ) {
    throw new TypeError("dangerouslySkipVerification must be a boolean");
  }
}

/** Check client options. */
export function verifyTlsClientOptions(o: TlsClientOptions): void {
  verifyTlsEndpointOptions(o, false);
  if (o.refusalWindowMs !== undefined) positiveInt("refusalWindowMs", o.refusalWindowMs, 0, 60_000);
}

/** Check server options. */
export function verifyTlsServerOptions(o: TlsServerOptions): void {
  verifyTlsEndpointOptions(o, true);
  if (o.authorizeTimeoutMs !== undefined) {
    positiveInt("authorizeTimeoutMs", o.authorizeTimeoutMs, 1, 3_600_000);
  }
}
