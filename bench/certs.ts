/**
 * The bench's certificates, made with spokewire's own PKI in memory (no external
 * program): one root CA, a server certificate for localhost / 127.0.0.1 / ::1, and a
 * client certificate, all ECDSA P-256. Peers (node:tls, ws) get the same PEMs.
 *
 * @module
 */
import {
  certificateToPem,
  createRootCa,
  exportPrivateKeyPem,
  type IssuedCredential,
  issueCredential,
} from "../mod.ts";

/** A certificate chain (leaf first) and its key, as PEM. */
export interface BenchCredential {
  readonly cert: string;
  readonly key: string;
}

/** Everything the TLS rows need. */
export interface BenchPki {
  /** The root CA certificate (PEM): the only trust anchor. */
  readonly ca: string;
  /** Server: SANs DNS:localhost, IP:127.0.0.1, IP:::1; CN=system:node:node-1. */
  readonly server: BenchCredential;
  /** Client: CN=system:node:node-1, O=system:nodes. */
  readonly client: BenchCredential;
}

let made: Promise<BenchPki> | undefined;

async function pem(c: IssuedCredential): Promise<BenchCredential> {
  return {
    cert: certificateToPem([c.certificate, ...c.intermediates]),
    key: await exportPrivateKeyPem(c.privateKey),
  };
}

/** The bench PKI, made once per process. */
export function benchPki(): Promise<BenchPki> {
  made ??= (async () => {
    const ca = await createRootCa({ commonName: "spokewire bench root" });
    const server = await issueCredential(ca, {
      profile: "both",
      commonName: "system:node:node-1",
      organizations: ["system:nodes"],
      dnsNames: ["localhost"],
      ips: ["127.0.0.1", "::1"],
    });
    const client = await issueCredential(ca, {
      profile: "client",
      commonName: "system:node:node-1",
      organizations: ["system:nodes"],
    });
    return {
      ca: certificateToPem(ca.certificate),
      server: await pem(server),
      client: await pem(client),
    };
  })();
  return made;
}
