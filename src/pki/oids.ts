/**
 * Object identifiers spokewire's PKI reads and writes.
 *
 * @module
 */

/** Extension OIDs (RFC 5280 section 4.2 and a few Web PKI ones). */
export const ExtensionOid = {
  /** subjectKeyIdentifier */
  subjectKeyIdentifier: "2.5.29.14",
  /** keyUsage */
  keyUsage: "2.5.29.15",
  /** subjectAltName */
  subjectAltName: "2.5.29.17",
  /** issuerAltName */
  issuerAltName: "2.5.29.18",
  /** basicConstraints */
  basicConstraints: "2.5.29.19",
  /** nameConstraints */
  nameConstraints: "2.5.29.30",
  /** cRLDistributionPoints */
  crlDistributionPoints: "2.5.29.31",
  /** certificatePolicies */
  certificatePolicies: "2.5.29.32",
  /** policyMappings */
  policyMappings: "2.5.29.33",
  /** authorityKeyIdentifier */
  authorityKeyIdentifier: "2.5.29.35",
  /** policyConstraints */
  policyConstraints: "2.5.29.36",
  /** extKeyUsage */
  extKeyUsage: "2.5.29.37",
  /** freshestCRL */
  freshestCrl: "2.5.29.46",
  /** inhibitAnyPolicy */
  inhibitAnyPolicy: "2.5.29.54",
  /** authorityInfoAccess */
  authorityInfoAccess: "1.3.6.1.5.5.7.1.1",
  /** Certificate Transparency signed certificate timestamps */
  ctSctList: "1.3.6.1.4.1.11129.2.4.2",
} as const;

/** Extended key usage purposes. */
export const EkuOid = {
  /** TLS server authentication */
  serverAuth: "1.3.6.1.5.5.7.3.1",
  /** TLS client authentication */
  clientAuth: "1.3.6.1.5.5.7.3.2",
  /** anyExtendedKeyUsage (never enough on its own for us) */
  any: "2.5.29.37.0",
} as const;

/** Distinguished-name attribute OIDs. */
export const NameOid = {
  /** commonName */
  commonName: "2.5.4.3",
  /** organizationName */
  organization: "2.5.4.10",
} as const;

/** Public-key algorithm and curve OIDs. */
export const KeyOid = {
  /** id-ecPublicKey */
  ecPublicKey: "1.2.840.10045.2.1",
  /** rsaEncryption */
  rsaEncryption: "1.2.840.113549.1.1.1",
  /** id-Ed25519 */
  ed25519: "1.3.101.112",
  /** id-dsa (refused) */
  dsa: "1.2.840.10040.4.1",
  /** secp256r1 */
  p256: "1.2.840.10045.3.1.7",
  /** secp384r1 */
  p384: "1.3.132.0.34",
  /** secp521r1 */
  p521: "1.3.132.0.35",
  /** secp192r1 (refused) */
  p192: "1.2.840.10045.3.1.1",
} as const;

/** Signature algorithm OIDs. */
export const SignatureOid = {
  /** ecdsa-with-SHA1 (refused) */
  ecdsaSha1: "1.2.840.10045.4.1",
  /** ecdsa-with-SHA256 */
  ecdsaSha256: "1.2.840.10045.4.3.2",
  /** ecdsa-with-SHA384 */
  ecdsaSha384: "1.2.840.10045.4.3.3",
  /** ecdsa-with-SHA512 */
  ecdsaSha512: "1.2.840.10045.4.3.4",
  /** md5WithRSAEncryption (refused) */
  rsaMd5: "1.2.840.113549.1.1.4",
  /** sha1WithRSAEncryption (refused) */
  rsaSha1: "1.2.840.113549.1.1.5",
  /** sha256WithRSAEncryption */
  rsaSha256: "1.2.840.113549.1.1.11",
  /** sha384WithRSAEncryption */
  rsaSha384: "1.2.840.113549.1.1.12",
  /** sha512WithRSAEncryption */
  rsaSha512: "1.2.840.113549.1.1.13",
  /** RSASSA-PSS (not supported) */
  rsaPss: "1.2.840.113549.1.1.10",
  /** dsa-with-SHA1 (refused) */
  dsaSha1: "1.2.840.10040.4.3",
  /** Ed25519 */
  ed25519: "1.3.101.112",
} as const;

/** PKCS#9 extensionRequest attribute carried in CSRs. */
export const CsrAttributeOid = {
  /** extensionRequest */
  extensionRequest: "1.2.840.113549.1.9.14",
  /** challengePassword */
  challengePassword: "1.2.840.113549.1.9.7",
} as const;
