/**
 * Drive the `openssl` CLI to make and check certificates. Dated certificates (expired,
 * not yet valid) are signed with `openssl ca -startdate/-enddate`; no faketime.
 * Every child runs synchronously with a timeout, so none outlives its call.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { opensslDate, setUpCa } from "../../src/testing/_fixtures/pki.ts";

/** Longest one openssl invocation may take. */
export const OPENSSL_TIMEOUT_MS = 30_000;

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], cwd?: string): RunResult {
  const r = spawnSync(cmd, args, { cwd, timeout: OPENSSL_TIMEOUT_MS, encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(r: RunResult, what: string): RunResult {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r;
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  b[0] = (b[0] & 0x7f) | 0x01;
  return `0x${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/** Options of one openssl-made certificate. */
export interface OsslCertOptions {
  subj: string;
  /** Lines of the X.509v3 extension section. */
  ext: string[];
  days?: number;
  /** notBefore of the certificate (signed with `openssl ca`); default: now, via `openssl x509`. */
  notBefore?: Date;
}

/** A scratch folder of openssl-made keys and certificates. */
export class OpensslWorkdir {
  readonly dir: string = mkdtempSync(join(tmpdir(), "spokewire-pki-"));
  #caConfig: string | undefined;

  constructor() {
    writeFileSync(
      join(this.dir, "req.cnf"),
      "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = placeholder\n",
    );
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  write(name: string, text: string): string {
    const p = this.path(name);
    writeFileSync(p, text);
    return p;
  }

  read(name: string): string {
    return readFileSync(this.path(name), "utf8");
  }

  #sign(name: string, opts: OsslCertOptions, issuer?: string): string {
    must(
      run(
        "openssl",
        [
          "req",
          "-new",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          `${name}.key`,
          "-out",
          `${name}.csr`,
          "-subj",
          opts.subj,
          "-config",
          "req.cnf",
        ],
        this.dir,
      ),
      `openssl req ${name}`,
    );
    this.write(`${name}.ext`, `[ext]\n${opts.ext.join("\n")}\n`);
    if (opts.notBefore) {
      if (!issuer) throw new Error("a dated certificate needs an issuer");
      const cnf = this.#caConfig ?? setUpCa(this.dir);
      this.#caConfig = cnf;
      const end = new Date(opts.notBefore.getTime() + (opts.days ?? 30) * 86_400_000);
      const args = ["ca", "-config", cnf, "-batch", "-notext", "-preserveDN", "-rand_serial"];
      args.push("-md", "sha256", "-cert", `${issuer}.pem`, "-keyfile", `${issuer}.key`);
      args.push("-in", `${name}.csr`, "-out", `${name}.pem`, "-extfile", `${name}.ext`);
      args.push("-extensions", "ext", "-startdate", opensslDate(opts.notBefore));
      args.push("-enddate", opensslDate(end));
      must(run("openssl", args, this.dir), `openssl ca ${name}`);
      return this.read(`${name}.pem`);
    }
    const args = [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-out",
      `${name}.pem`,
      "-days",
      String(opts.days ?? 30),
      "-set_serial",
      randomSerial(),
      "-extfile",
      `${name}.ext`,
      "-extensions",
      "ext",
      "-sha256",
    ];
    if (issuer) args.push("-CA", `${issuer}.pem`, "-CAkey", `${issuer}.key`);
    else args.push("-signkey", `${name}.key`);
    const r = run("openssl", args, this.dir);
    must(r, `openssl x509 ${name}`);
    return this.read(`${name}.pem`);
  }

  /** A self-signed root. */
  root(name: string, opts: Partial<OsslCertOptions> = {}): string {
    return this.#sign(name, {
      subj: opts.subj ?? `/CN=${name}`,
      days: opts.days ?? 3650,
      ext: opts.ext ?? [
        "basicConstraints = critical, CA:TRUE",
        "keyUsage = critical, keyCertSign, cRLSign",
        "subjectKeyIdentifier = hash",
      ],
    });
  }

  /** A certificate signed by `issuer` (a name given to root() or cert()). */
  cert(name: string, issuer: string, opts: OsslCertOptions): string {
    return this.#sign(name, opts, issuer);
  }

  /**
   * `openssl verify -x509_strict` of `leaf` against `root`; returns the openssl
   * error number (0 = OK).
   */
  verify(
    leaf: string,
    root: string,
    opts: { untrusted?: string; purpose: "sslserver" | "sslclient"; host?: string; ip?: string },
  ): { code: number; output: string } {
    const args = ["verify", "-x509_strict", "-purpose", opts.purpose, "-CAfile", this.path(root)];
    if (opts.untrusted) args.push("-untrusted", this.path(opts.untrusted));
    if (opts.host) args.push("-verify_hostname", opts.host);
    if (opts.ip) args.push("-verify_ip", opts.ip);
    args.push(this.path(leaf));
    const r = run("openssl", args);
    const out = r.stdout + r.stderr;
    if (r.status === 0) return { code: 0, output: out };
    const m = /error (\d+) at/.exec(out);
    if (!m) throw new Error(`openssl verify gave no error number: ${out}`);
    return { code: Number(m[1]), output: out };
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** openssl's X509_V_ERR numbers used in the tests. */
export const OsslErr = {
  OK: 0,
  CERT_NOT_YET_VALID: 9,
  CERT_HAS_EXPIRED: 10,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 20,
  /** X509_V_ERR_INVALID_CA ("invalid CA certificate") in OpenSSL 3. */
  INVALID_CA: 79,
  PATH_LENGTH_EXCEEDED: 25,
  INVALID_PURPOSE: 26,
  HOSTNAME_MISMATCH: 62,
  IP_ADDRESS_MISMATCH: 64,
} as const;
