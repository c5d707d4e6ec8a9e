/**
 * A private OpenSSH sshd for tests: its own config, host keys, client keys,
 * authorized_keys, PidFile and loopback port. Ready when it logs that it
 * listens (no sleeps); stopped by PID.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type KeyKind = "ed25519" | "ecdsa" | "rsa";

export interface Sshd {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly user: string;
  /** Client private keys (OpenSSH format) that authorized_keys accepts. */
  readonly clientKeys: Record<KeyKind, string>;
  readonly clientKeyPaths: Record<KeyKind, string>;
  /** A client key that authorized_keys does NOT list. */
  readonly strangerKey: string;
  /** Host public key lines (`type base64 comment`). */
  readonly hostKeys: Record<KeyKind, string>;
  /** known_hosts text for this server (all host keys). */
  knownHosts(kinds?: KeyKind[]): string;
  /** `SHA256:` fingerprint of a host key. */
  fingerprint(kind: KeyKind): string;
  /** Lines sshd wrote to stderr (for debugging failed tests). */
  readonly log: string[];
  stop(): Promise<void>;
}

export interface SshdOptions {
  /** Extra sshd_config lines (e.g. "RekeyLimit 1M 5s", "AllowTcpForwarding no"). */
  readonly extra?: readonly string[];
  readonly hostKeyKinds?: readonly KeyKind[];
}

const KEYGEN: Record<KeyKind, string[]> = {
  ed25519: ["-t", "ed25519"],
  ecdsa: ["-t", "ecdsa", "-b", "256"],
  rsa: ["-t", "rsa", "-b", "2048"],
};

function keygen(path: string, kind: KeyKind): void {
  execFileSync("ssh-keygen", [...KEYGEN[kind], "-N", "", "-q", "-C", `test-${kind}`, "-f", path]);
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

/** Start a private sshd on 127.0.0.1 (retried: the free port may be taken meanwhile). */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
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
  if (!existsSync("/run/sshd")) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
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
    ...(options.extra ?? []),
  ];
  writeFileSync(join(dir, "sshd_config"), `${config.join("\n")}\n`);
  const log: string[] = [];
  const child: ChildProcess = spawn(
    "/usr/sbin/sshd",
    ["-D", "-e", "-f", join(dir, "sshd_config")],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
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
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGTERM");
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
  return {
    host: "127.0.0.1",
    port,
    dir,
    user: "root",
    clientKeys: {
      ed25519: priv("client_ed25519"),
      ecdsa: priv("client_ecdsa"),
      rsa: priv("client_rsa"),
    },
    clientKeyPaths: {
      ed25519: join(kd, "client_ed25519"),
      ecdsa: join(kd, "client_ecdsa"),
      rsa: join(kd, "client_rsa"),
    },
    strangerKey: priv("stranger"),
    hostKeys,
    log,
    knownHosts(ks: KeyKind[] = [...kinds]) {
      return `${ks.map((k) => `[127.0.0.1]:${port} ${hostKeys[k].split(" ").slice(0, 2).join(" ")}`).join("\n")}\n`;
    },
    fingerprint(kind: KeyKind) {
      const out = execFileSync(
        "ssh-keygen",
        ["-l", "-E", "sha256", "-f", join(kd, `host_${kind}.pub`)],
        {
          encoding: "utf8",
        },
      );
      return out.split(" ")[1]!;
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

/** A host public key that belongs to no test server (for "wrong host key"). */
export function otherHostKeyLine(): string {
  return readFileSync(join(keys(), "other_host.pub"), "utf8").trim();
}
