export type { CertSummary, SubjectAltNames } from "./certificate.ts";
export * from "./config.ts";
export * from "./dialer.ts";
export * from "./listener.ts";
export * from "./material.ts";
export { identityMatches, sanMatches } from "./name_match.ts";
export * from "./verify_error.ts";
export { x509Identity } from "./verify_peer.ts";
