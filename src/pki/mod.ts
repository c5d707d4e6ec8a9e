/**
 * PKI: certificate authorities, issuing by profile, PEM/DER, path validation
 * (`verifyChain`), kubelet-style CSR bootstrap and rotation.
 *
 * @module
 */

export * from "./bootstrap_token.ts";
export * from "./csr.ts";
export * from "./files.ts";
export { certificateDer, type LeafIdentity, leafIdentity } from "./identity.ts";
export * from "./issue.ts";
export * from "./keys.ts";
export * from "./names.ts";
export * from "./node_csr_signer.ts";
export * from "./oids.ts";
export * from "./pem.ts";
export * from "./rotation.ts";
export * from "./service_token.ts";
export * from "./verify_chain.ts";
