/**
 * The one place where runtime TLS error codes (OpenSSL verify codes, Node's
 * `ERR_TLS_*` and `ERR_SSL_*` alert codes) become spokewire errors.
 *
 * @module
 */

import type { VerificationReason } from "../channel/errors.ts";

/** OpenSSL certificate-verification codes (from `verifyError()`) -> reason. */
export const VERIFY_CODE_REASONS: Readonly<Record<string, VerificationReason>> = Object.freeze({
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "untrusted-root",
  UNABLE_TO_GET_ISSUER_CERT: "untrusted-root",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "untrusted-root",
  DEPTH_ZERO_SELF_SIGNED_CERT: "untrusted-root",
  SELF_SIGNED_CERT_IN_CHAIN: "untrusted-root",
  CERT_UNTRUSTED: "untrusted-root",
  CERT_REJECTED: "untrusted-root",
  CERT_HAS_EXPIRED: "expired",
  CRL_HAS_EXPIRED: "expired",
  CERT_NOT_YET_VALID: "not-yet-valid",
  CRL_NOT_YET_VALID: "not-yet-valid",
  CERT_SIGNATURE_FAILURE: "bad-signature",
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: "bad-signature",
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: "malformed",
  ERROR_IN_CERT_NOT_BEFORE_FIELD: "malformed",
  ERROR_IN_CERT_NOT_AFTER_FIELD: "malformed",
  INVALID_CA: "not-a-ca",
  PATH_LENGTH_EXCEEDED: "path-length",
  CERT_CHAIN_TOO_LONG: "chain-too-long",
  INVALID_PURPOSE: "bad-eku",
  HOSTNAME_MISMATCH: "name-mismatch",
  IP_ADDRESS_MISMATCH: "name-mismatch",
  ERR_TLS_CERT_ALTNAME_INVALID: "name-mismatch",
  CERT_REVOKED: "untrusted-root",
  EE_KEY_TOO_SMALL: "weak-key",
  CA_KEY_TOO_SMALL: "weak-key",
  CA_MD_TOO_WEAK: "weak-algorithm",
});

/**
 * Alerts a client receives when the server refused its certificate (during a
 * TLS 1.2 handshake, or just after a TLS 1.3 one). `certificate_required`
 * means we sent none.
 */
export const REFUSAL_ALERT_REASONS: Readonly<Record<string, VerificationReason>> = Object.freeze({
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: "client-cert-missing",
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: "client-cert-missing",
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: "client-cert-refused",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: "client-cert-refused",
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: "client-cert-refused",
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: "client-cert-refused",
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: "client-cert-refused",
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: "client-cert-refused",
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: "client-cert-refused",
  ERR_SSL_TLSV1_ALERT_ACCESS_DENIED: "client-cert-refused",
  ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR: "client-cert-refused",
});

/** The reason for a runtime verification code; unknown codes fail closed as `untrusted-root`. */
export function reasonForVerifyCode(code: string): VerificationReason {
  return VERIFY_CODE_REASONS[code] ?? "untrusted-root";
}

/** The reason when a server's alert or hang-up refused us; `undefined` if `code` is not a refusal. */
export function reasonForRefusal(code: string | undefined): VerificationReason | undefined {
  if (code === undefined) return undefined;
  // OpenSSL 3.2+ (Node 22/24) names the TLS 1.2 alerts "SSL/TLS_ALERT_*" where 3.0 said "SSLV3_ALERT_*".
  return REFUSAL_ALERT_REASONS[code.replace("ERR_SSL_SSL/TLS_ALERT_", "ERR_SSL_SSLV3_ALERT_")];
}

/** Codes that mean the connection simply went away (a refusal when it happens right after the handshake). */
export const HANGUP_CODES: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ECANCELED",
  "ERR_STREAM_PREMATURE_CLOSE",
]);
