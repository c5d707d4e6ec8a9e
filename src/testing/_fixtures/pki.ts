/**
 * Test certificates made with the `openssl` CLI (a real, independent issuer),
 * once per test file, into a temporary directory. ECDSA P-256 keys: fast.
 *
 * Leaves are signed with `openssl ca`, which takes explicit validity dates
 * (`-startdate`/`-enddate`), so expired and not-yet-valid certificates need no
 * clock faking (no `faketime`). Only `openssl` must be installed.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { missingProgram } from "./programs.ts";

/** One key pair with its certificate, as PEM text and as files. */
export interface Issued {
  readonly cert: string;
  readonly key: string;
  readonly certPath: string;
  readonly keyPath: string;
}

/** Everything the TLS tests need. */
export interface TestPki {
  readonly dir: string;
  /** The trusted root. */
  readonly ca: Issued;
  /** An intermediate CA under `ca`. */
  readonly inter: Issued;
  /** A root nobody trusts. */
  readonly foreignCa: Issued;
  /** Server: SANs DNS:localhost, DNS:node-1.example, IP:127.0.0.1; CN=system:node:node-1. */
  readonly server: Issued;
  /** A second server certificate from `ca` with the same SANs (for rotation). */
  readonly server2: Issued;
  /** Server certificate issued by `inter`; `cert` holds leaf + intermediate. */
  readonly serverViaInter: Issued;
  /** Same SANs as `server`, issued by `foreignCa`. */
  readonly foreignServer: Issued;
  /** Issued by `ca` but with SAN DNS:other.example only. */
  readonly wrongSanServer: Issued;
  /** Issued by `ca`, CN=localhost, no SAN at all (CN fallback must not apply). */
  readonly cnOnlyServer: Issued;
  /** Issued by `ca`, SANs like `server`, valid 2020-01-01 to 2020-01-11 (expired). */
  readonly expiredServer: Issued;
  /** Issued by `ca`, SANs like `server`, valid from 3 days after now (not yet valid). */
  readonly notYetValidServer: Issued;
  /** Like `server`, plus a critical extension nobody knows (OID 1.3.6.1.4.1.99999.1). */
  readonly criticalExtServer: Issued;
  /** Like `server`, with an RSA-1024 key. */
  readonly weakKeyServer: Issued;
  /** Client: CN=system:node:node-1, O=system:nodes. */
  readonly client: Issued;
  /** Client: CN=system:node:node-2, O=system:other. */
  readonly client2: Issued;
  /** Agent client: CN=system:node:node-1, O=system:nodes, SANs DNS:node-1.example, IP:127.0.0.2. */
  readonly node1Agent: Issued;
  /** Agent client: CN=system:node:node-2, O=system:nodes, SANs DNS:localhost, IP:127.0.0.1. */
  readonly node2Agent: Issued;
  /** Client from `foreignCa`. */
  readonly foreignClient: Issued;
  /** Client from `ca`, valid 2020-01-01 to 2020-01-11 (expired). */
  readonly expiredClient: Issued;
  /** Client from `ca`, valid from 3 days after now (not yet valid). */
  readonly notYetValidClient: Issued;
  /** The CA bundle file (just `ca`). */
  readonly caPath: string;
  /** Remove the directory. */
  cleanup(): void;
}

/** Longest one openssl invocation may take. */
const OPENSSL_TIMEOUT_MS = 30_000;

function ossl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: "pipe", timeout: OPENSSL_TIMEOUT_MS });
}

function keygen(dir: string, name: string, rsaBits?: number): string {
  const p = join(dir, `${name}.key`);
  const alg =
    rsaBits === undefined
      ? ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
      : ["-algorithm", "RSA", "-pkeyopt", `rsa_keygen_bits:${rsaBits}`];
  ossl(["genpkey", ...alg, "-out", p], dir);
  return p;
}

function read(certPath: string, keyPath: string): Issued {
  return {
    cert: readFileSync(certPath, "utf8"),
    key: readFileSync(keyPath, "utf8"),
    certPath,
    keyPath,
  };
}

function makeRoot(dir: string, name: string, cn: string): Issued {
  const keyPath = keygen(dir, name);
  const certPath = join(dir, `${name}.crt`);
  ossl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      keyPath,
      "-subj",
      `/CN=${cn}`,
      "-days",
      "30",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      certPath,
    ],
    dir,
  );
  return read(certPath, keyPath);
}

/**
 * The smallest `openssl ca` configuration: a database and an output folder in the
 * temporary directory, any subject accepted and kept as the CSR has it, extensions
 * only from `-extfile` (never copied from the request).
 */
const CA_CONFIG = `[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
new_certs_dir = ca-db/new
serial = ca-db/serial
default_md = sha256
policy = any_subject
unique_subject = no
copy_extensions = none
email_in_dn = no
[any_subject]
organizationName = optional
commonName = optional
`;

/** Make `dir` an `openssl ca` workspace (database, serial, config); returns the config path. */
export function setUpCa(dir: string): string {
  mkdirSync(join(dir, "ca-db", "new"), { recursive: true });
  writeFileSync(join(dir, "ca-db", "index.txt"), "");
  writeFileSync(join(dir, "ca-db", "serial"), "01\n");
  const cnf = join(dir, "ca.cnf");
  writeFileSync(cnf, CA_CONFIG);
  return cnf;
}

/** `YYYYMMDDHHMMSSZ`, the form `openssl ca -startdate/-enddate` takes. */
export function opensslDate(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

const DAY_MS = 86_400_000;

interface LeafSpec {
  readonly subj: string;
  readonly ext: string;
  /** notBefore; default: one minute ago. */
  readonly notBefore?: Date;
  /** Days from notBefore to notAfter; default 30. */
  readonly days?: number;
  /** An RSA key of this many bits instead of P-256. */
  readonly rsaBits?: number;
}

function issue(dir: string, name: string, issuer: Issued, spec: LeafSpec): Issued {
  const keyPath = keygen(dir, name, spec.rsaBits);
  const csr = join(dir, `${name}.csr`);
  const extPath = join(dir, `${name}.ext`);
  const certPath = join(dir, `${name}.crt`);
  writeFileSync(extPath, `[v3]\n${spec.ext}\n`);
  ossl(["req", "-new", "-key", keyPath, "-subj", spec.subj, "-out", csr], dir);
  const start = spec.notBefore ?? new Date(Date.now() - 60_000);
  const end = new Date(start.getTime() + (spec.days ?? 30) * DAY_MS);
  ossl(
    [
      "ca",
      "-config",
      join(dir, "ca.cnf"),
      "-batch",
      "-notext",
      "-preserveDN",
      "-rand_serial",
      "-md",
      "sha256",
      "-cert",
      issuer.certPath,
      "-keyfile",
      issuer.keyPath,
      "-in",
      csr,
      "-startdate",
      opensslDate(start),
      "-enddate",
      opensslDate(end),
      "-extfile",
      extPath,
      "-extensions",
      "v3",
      "-out",
      certPath,
    ],
    dir,
  );
  return read(certPath, keyPath);
}

const SERVER_EXT = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "extendedKeyUsage=serverAuth",
  "subjectAltName=DNS:localhost,DNS:node-1.example,IP:127.0.0.1",
].join("\n");

const CLIENT_EXT = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "extendedKeyUsage=clientAuth",
].join("\n");

/** notBefore of the expired certificates. */
const EXPIRED_FROM = new Date("2020-01-01T00:00:00Z");

/**
 * Generate the test PKI into a fresh temporary directory.
 *
 * @example
 * ```ts ignore
 * const pki = makeTestPki();
 * after(() => pki.cleanup());
 * ```
 */
export function makeTestPki(): TestPki {
  const missing = missingProgram("openssl");
  if (missing) throw new Error(`Cannot make the test PKI: ${missing}`);
  const dir = mkdtempSync(join(tmpdir(), "spokewire-tls-"));
  setUpCa(dir);
  const ca = makeRoot(dir, "ca", "spokewire test root");
  const foreignCa = makeRoot(dir, "foreign-ca", "foreign root");
  const inter = issue(dir, "inter", ca, {
    subj: "/CN=spokewire test intermediate",
    ext: "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign",
  });
  const serverSubj = "/O=system:nodes/CN=system:node:node-1";
  const server = issue(dir, "server", ca, { subj: serverSubj, ext: SERVER_EXT });
  const server2 = issue(dir, "server2", ca, { subj: serverSubj, ext: SERVER_EXT });
  const viaInter = issue(dir, "server-inter", inter, { subj: serverSubj, ext: SERVER_EXT });
  const serverViaInter: Issued = { ...viaInter, cert: viaInter.cert + inter.cert };
  writeFileSync(viaInter.certPath, serverViaInter.cert);
  const foreignServer = issue(dir, "foreign-server", foreignCa, {
    subj: serverSubj,
    ext: SERVER_EXT,
  });
  const wrongSanServer = issue(dir, "wrong-san", ca, {
    subj: serverSubj,
    ext: SERVER_EXT.replace(/subjectAltName=.*/, "subjectAltName=DNS:other.example"),
  });
  const cnOnlyServer = issue(dir, "cn-only", ca, {
    subj: "/CN=localhost",
    ext: SERVER_EXT.replace(/\nsubjectAltName=.*/, ""),
  });
  const expiredServer = issue(dir, "expired-server", ca, {
    subj: serverSubj,
    ext: SERVER_EXT,
    notBefore: EXPIRED_FROM,
    days: 10,
  });
  const criticalExtServer = issue(dir, "critical-ext-server", ca, {
    subj: serverSubj,
    ext: `${SERVER_EXT}\n1.3.6.1.4.1.99999.1=critical,ASN1:UTF8String:unknown`,
  });
  const weakKeyServer = issue(dir, "weak-key-server", ca, {
    subj: serverSubj,
    ext: SERVER_EXT,
    rsaBits: 1024,
  });
  const notYetValidServer = issue(dir, "future-server", ca, {
    subj: serverSubj,
    ext: SERVER_EXT,
    notBefore: new Date(Date.now() + 3 * DAY_MS),
    days: 10,
  });
  const clientSubj = "/O=system:nodes/CN=system:node:node-1";
  const client = issue(dir, "client", ca, { subj: clientSubj, ext: CLIENT_EXT });
  const client2 = issue(dir, "client2", ca, {
    subj: "/O=system:other/CN=system:node:node-2",
    ext: CLIENT_EXT,
  });
  // Two node agents whose certificates name their addresses (what each may announce).
  const node1Agent = issue(dir, "node1-agent", ca, {
    subj: "/O=system:nodes/CN=system:node:node-1",
    ext: `${CLIENT_EXT}\nsubjectAltName=DNS:node-1.example,IP:127.0.0.2`,
  });
  const node2Agent = issue(dir, "node2-agent", ca, {
    subj: "/O=system:nodes/CN=system:node:node-2",
    ext: `${CLIENT_EXT}\nsubjectAltName=DNS:localhost,IP:127.0.0.1`,
  });
  const foreignClient = issue(dir, "foreign-client", foreignCa, {
    subj: clientSubj,
    ext: CLIENT_EXT,
  });
  const expiredClient = issue(dir, "expired-client", ca, {
    subj: clientSubj,
    ext: CLIENT_EXT,
    notBefore: EXPIRED_FROM,
    days: 10,
  });
  const notYetValidClient = issue(dir, "future-client", ca, {
    subj: clientSubj,
    ext: CLIENT_EXT,
    notBefore: new Date(Date.now() + 3 * DAY_MS),
    days: 10,
  });
  return {
    dir,
    ca,
    inter,
    foreignCa,
    server,
    server2,
    serverViaInter,
    foreignServer,
    wrongSanServer,
    cnOnlyServer,
    expiredServer,
    notYetValidServer,
    criticalExtServer,
    weakKeyServer,
    client,
    client2,
    node1Agent,
    node2Agent,
    foreignClient,
    expiredClient,
    notYetValidClient,
    caPath: ca.certPath,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
