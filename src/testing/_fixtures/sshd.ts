/**
 * A private OpenSSH sshd for tests and the bench: its own config, host keys, client
 * keys, authorized_keys, PidFile and loopback port. Ready when it logs that it listens
 * (no sleeps); stopped by PID. Needs `sshd` (openssh-server) and `ssh-keygen`
 * (openssh-client): check {@link sshdSkipReason} first.
 *
 * {@link SshServerFixture} is the part shared with the embedded ssh2 server
 * (`ssh2_server.ts`), so a test or a bench case can run against either.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { findProgram, missingProgram } from "./programs.ts";

/** Key types the fixtures generate. */
export type KeyKind = "ed25519" | "ecdsa" | "rsa";

/** What every SSH server fixture (OpenSSH sshd, the ssh2 server) offers. */
export interface SshServerFixture {
  /** Which server this is. */
  readonly kind: "sshd" | "ssh2";
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The ed25519 client private key (OpenSSH format) the server accepts. */
  readonly clientKey: string;
  /** The same key as a file (mode 0600), for `ssh -i`. */
  readonly clientKeyPath: string;
  /** A client key the server does NOT accept. */
  readonly strangerKey: string;
  /** The ed25519 host public key line (`type base64 comment`). */
  readonly hostKey: string;
  /** The server's process id, when it is a separate process (sshd forks a child per connection). */
  readonly pid: number | undefined;
  /** known_hosts text for this server. */
  knownHosts(): string;
  /** `SHA256:` fingerprint of the ed25519 host key. */
  fingerprint(): string;
  stop(): Promise<void>;
}

/** A running private sshd. */
export interface Sshd extends SshServerFixture {
  readonly kind: "sshd";
  readonly dir: string;
  /** Client private keys (OpenSSH format) that authorized_keys accepts. */
  readonly clientKeys: Record<KeyKind, string>;
  readonly clientKeyPaths: Record<KeyKind, string>;
  /** Host public key lines (`type base64 comment`). */
  readonly hostKeys: Record<KeyKind, string>;
  /** known_hosts text for this server (all host keys, or the given kinds). */
  knownHosts(kinds?: KeyKind[]): string;
  /** `SHA256:` fingerprint of a host key (default ed25519). */
  fingerprint(kind?: KeyKind): string;
  /** Lines sshd wrote to stderr (for debugging failed tests). */
  readonly log: string[];
}

/** How to start the sshd. */
export interface SshdOptions {
  /** Extra sshd_config lines (e.g. "RekeyLimit 1M 5s", "AllowTcpForwarding no"). */
  readonly extra?: readonly string[];
  readonly hostKeyKinds?: readonly KeyKind[];
  /** The ciphers sshd offers (sshd_config `Ciphers`); default sshd's own list. */
  readonly ciphers?: readonly string[];
}

/** Why the sshd fixture cannot run here ("sshd not installed (Debian package openssh-server)"), or undefined. */
export function sshdSkipReason(): string | undefined {
  return missingProgram("sshd", "ssh-keygen");
}

const KEYGEN: Record<KeyKind, string[]> = {
  ed25519: ["-t", "ed25519"],
  ecdsa: ["-t", "ecdsa", "-b", "256"],
  rsa: ["-t", "rsa", "-b", "2048"],
};

function keygenPath(): string {
  const p = findProgram("ssh-keygen");
  if (!p) throw new Error(missingProgram("ssh-keygen"));
  return p;
}

function keygen(path: string, kind: KeyKind): void {
  execFileSync(keygenPath(), [...KEYGEN[kind], "-N", "", "-q", "-C", `test-${kind}`, "-f", path]);
}

/** `SHA256:` fingerprint of a public key line, computed like `ssh-keygen -l -E sha256`. */
export function publicKeyFingerprint(line: string): string {
  const blob = Buffer.from(line.trim().split(/\s+/)[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** A free loopback port (bind 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Generated keys are shared by the servers running at the same time (ssh-keygen
 * for RSA is slow on shared cores) and removed when the last server stops.
 */
let keyDir: string | undefined;
let running = 0;
function keys(): string {
  if (keyDir) return keyDir;
  keyDir = mkdtempSync(join(tmpdir(), "spokewire-sshkeys-"));
  for (const k of ["ed25519", "ecdsa", "rsa"] as const) {
    keygen(join(keyDir, `host_${k}`), k);
    keygen(join(keyDir, `client_${k}`), k);
  }
  keygen(join(keyDir, "stranger"), "ed25519");
  keygen(join(keyDir, "other_host"), "ed25519");
  return keyDir;
}

/** One server fewer; the last one removes the shared keys. */
function release(): void {
  if (--running === 0 && keyDir) {
    rmSync(keyDir, { recursive: true, force: true });
    keyDir = undefined;
  }
}

/**
 * sshd run as root insists on its privilege-separation directory (compiled in as
 * /run/sshd; no config option moves it). A fresh container has none: create it
 * when we may (as Debian's service unit does), else let sshd say what it misses.
 */
function privsepDir(): void {
  if (existsSync("/run/sshd") || process.getuid?.() !== 0) return;
  try {
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  } catch {
    // sshd will report it
  }
}

/** Start a private sshd on 127.0.0.1 (retried: the free port may be taken meanwhile). */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const missing = sshdSkipReason();
  if (missing) throw new Error(missing);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function startOnce(options: SshdOptions): Promise<Sshd> {
  const kd = keys();
  running++;
  let stopped = false;
  const dir = mkdtempSync(join(tmpdir(), "spokewire-sshd-"));
  privsepDir();
  const kinds = options.hostKeyKinds ?? ["ed25519", "ecdsa", "rsa"];
  const auth = (["ed25519", "ecdsa", "rsa"] as const)
    .map((k) => readFileSync(join(kd, `client_${k}.pub`), "utf8").trim())
    .join("\n");
  writeFileSync(join(dir, "authorized_keys"), `${auth}\n`, { mode: 0o600 });
  const port = await freePort();
  const config = [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    ...kinds.map((k) => `HostKey ${join(kd, `host_${k}`)}`),
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "StrictModes no",
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "MaxStartups 100:30:200",
    "LogLevel INFO",
    ...(options.ciphers ? [`Ciphers ${options.ciphers.join(",")}`] : []),
    ...(options.extra ?? []),
  ];
  writeFileSync(join(dir, "sshd_config"), `${config.join("\n")}\n`);
  const log: string[] = [];
  const child: ChildProcess = spawn(
    findProgram("sshd")!,
    ["-D", "-e", "-f", join(dir, "sshd_config")],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const ready = new Promise<void>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(
      () => reject(new Error(`sshd not ready in 20 s: ${log.join("\n")}`)),
      20_000,
    );
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      buf += d;
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      for (const l of lines) {
        if (log.length < 5000) log.push(l);
        if (l.includes(`Server listening on 127.0.0.1 port ${port}`)) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited with ${code}: ${log.join("\n")}`));
    });
  });
  try {
    await ready;
  } catch (err) {
    if (child.exitCode === null && child.pid !== undefined) {
      process.kill(child.pid, "SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    release();
    throw err;
  }
  const pub = (name: string): string => readFileSync(join(kd, `${name}.pub`), "utf8").trim();
  const hostKeys = {
    ed25519: pub("host_ed25519"),
    ecdsa: pub("host_ecdsa"),
    rsa: pub("host_rsa"),
  };
  const priv = (name: string): string => readFileSync(join(kd, name), "utf8");
  const clientKeys = {
    ed25519: priv("client_ed25519"),
    ecdsa: priv("client_ecdsa"),
    rsa: priv("client_rsa"),
  };
  const clientKeyPaths = {
    ed25519: join(kd, "client_ed25519"),
    ecdsa: join(kd, "client_ecdsa"),
    rsa: join(kd, "client_rsa"),
  };
  return {
    kind: "sshd",
    host: "127.0.0.1",
    port,
    dir,
    // sshd without PAM logs in the user it runs as: ourselves.
    user: userInfo().username,
    pid: child.pid,
    clientKey: clientKeys.ed25519,
    clientKeyPath: clientKeyPaths.ed25519,
    clientKeys,
    clientKeyPaths,
    strangerKey: priv("stranger"),
    hostKey: hostKeys.ed25519,
    hostKeys,
    log,
    knownHosts(ks: KeyKind[] = [...kinds]) {
      return `${ks.map((k) => `[127.0.0.1]:${port} ${hostKeys[k].split(" ").slice(0, 2).join(" ")}`).join("\n")}\n`;
    },
    fingerprint(kind: KeyKind = "ed25519") {
      return publicKeyFingerprint(hostKeys[kind]);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.pid !== undefined) {
        process.kill(child.pid, "SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
      release();
    },
  };
}

/** A host public key that belongs to no sshd fixture (for "wrong host key"). */
export function otherHostKeyLine(): string {
  return readFileSync(join(keys(), "other_host.pub"), "utf8").trim();
}
