/**
 * Bench cases: SSH. spokewire's direct-tcpip channel beside `ssh2` `forwardOut` and
 * OpenSSH `ssh -L`, through a private `sshd` when OpenSSH is installed, otherwise
 * through the embedded `ssh2` server (so the rows exist on every machine). Every
 * contender uses the same cipher: spokewire's first choice in this runtime. Also the
 * end-to-end row: TLS to a kubelet through a spokewire SSH tunnel.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { SshConnection } from "../../mod.ts";
import { defaultCipherPreference } from "../../src/ssh/cipher.ts";
import { missingProgram } from "../../src/testing/_fixtures/programs.ts";
import { startSsh2Server } from "../../src/testing/_fixtures/ssh2_server.ts";
import {
  freePort,
  type SshServerFixture,
  sshdSkipReason,
  startSshd,
} from "../../src/testing/_fixtures/sshd.ts";
import { channelConn, duplexConn } from "../conn.ts";
import { kubeletClient, startKubelet } from "../kubelet.ts";
import { startTcpTarget } from "../target.ts";
import type { BenchCase, CaseContext, Path, PathProcess } from "../types.ts";
import { netConn } from "./tcp.ts";

/** The cipher every SSH row uses. */
const CIPHER = defaultCipherPreference()[0];

/** sshd when installed, else the embedded ssh2 server. */
async function startServer(ctx: CaseContext): Promise<SshServerFixture> {
  if (sshdSkipReason() === undefined) return startSshd({ ciphers: [CIPHER] });
  ctx.log("sshd not installed (openssh-server): the SSH rows go through the embedded ssh2 server");
  return startSsh2Server({ ciphers: [CIPHER] });
}

function serverProcesses(s: SshServerFixture): PathProcess[] {
  return s.pid !== undefined ? [{ name: "sshd", pid: s.pid, withChildren: true }] : [];
}

function connectSpokewire(s: SshServerFixture): Promise<SshConnection> {
  return SshConnection.connect({
    host: s.host,
    port: s.port,
    username: s.user,
    privateKey: s.clientKey,
    hostKeys: { knownHosts: s.knownHosts() },
    algorithms: { ciphers: [CIPHER] },
  });
}

const spokewire: BenchCase = {
  id: "ssh.spokewire",
  group: "SSH",
  label: "spokewire SSH",
  peer: "ssh.ssh2",
  alsoVs: ["ssh.openssh"],
  async start(ctx): Promise<Path> {
    const target = await startTcpTarget();
    const server = await startServer(ctx);
    const conn = await connectSpokewire(server);
    return {
      open: async () =>
        channelConn(await conn.openDirectTcpip({ host: "127.0.0.1", port: target.port })),
      processes: () => serverProcesses(server),
      async close() {
        await conn.close();
        await server.stop();
        await target.close();
      },
    };
  },
};

const ssh2Case: BenchCase = {
  id: "ssh.ssh2",
  group: "SSH",
  label: "ssh2 forwardOut",
  async start(ctx): Promise<Path> {
    const target = await startTcpTarget();
    const server = await startServer(ctx);
    const hostBlob = Buffer.from(server.hostKey.split(/\s+/)[1] ?? "", "base64");
    const client = new ssh2.Client();
    // Our own socket with Nagle off, as every other row has (ssh2 leaves it on).
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host: server.host, port: server.port, noDelay: true });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    await new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve());
      client.once("error", reject);
      client.connect({
        sock,
        host: server.host,
        port: server.port,
        username: server.user,
        privateKey: server.clientKey,
        hostVerifier: (key: Buffer) => key.equals(hostBlob),
        algorithms: { cipher: [CIPHER as ssh2.CipherAlgorithm] },
      });
    });
    client.on("error", () => {});
    return {
      open: () =>
        new Promise((resolve, reject) =>
          client.forwardOut("127.0.0.1", 0, "127.0.0.1", target.port, (e, st) =>
            e ? reject(e) : resolve(duplexConn(st)),
          ),
        ),
      processes: () => serverProcesses(server),
      async close() {
        client.end();
        await server.stop();
        await target.close();
      },
    };
  },
};

const openssh: BenchCase = {
  id: "ssh.openssh",
  group: "SSH",
  label: "OpenSSH ssh -L",
  skipReason: async () => missingProgram("ssh"),
  async start(ctx): Promise<Path> {
    const target = await startTcpTarget();
    const server = await startServer(ctx);
    const kh = join(tmpdir(), `spokewire-bench-kh-${process.pid}`);
    writeFileSync(kh, server.knownHosts());
    const local = await freePort();
    const child: ChildProcess = spawn(
      "ssh",
      [
        "-N",
        "-F",
        "/dev/null",
        "-p",
        String(server.port),
        "-i",
        server.clientKeyPath,
        "-o",
        `UserKnownHostsFile=${kh}`,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-c",
        CIPHER,
        "-L",
        `127.0.0.1:${local}:127.0.0.1:${target.port}`,
        `${server.user}@${server.host}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let err = "";
    child.stderr?.on("data", (d) => {
      err += d;
    });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.pid) process.kill(child.pid, "SIGTERM");
      await exited;
      await server.stop();
      await target.close();
    };
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        (await netConn(local)).destroy();
        break;
      } catch {
        if (Date.now() > deadline || child.exitCode !== null) {
          await stop();
          throw new Error(`ssh -L did not start: ${err.trim()}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const pid = child.pid ?? 0;
    return {
      open: () => netConn(local),
      processes: () => [{ name: "ssh -L", pid }, ...serverProcesses(server)],
      close: stop,
    };
  },
};

const overSsh: BenchCase = {
  id: "e2e.tls-over-ssh",
  group: "TLS to a kubelet",
  label: "kubelet TLS over SSH",
  peer: "e2e.tls-over-tcp",
  alsoVs: ["tls.node-tls", "ssh.spokewire"],
  async start(ctx): Promise<Path> {
    const kubelet = await startKubelet();
    const server = await startServer(ctx);
    const conn = await connectSpokewire(server);
    const client = await kubeletClient();
    return {
      open: async () =>
        channelConn(
          await client.over(await conn.openDirectTcpip({ host: "127.0.0.1", port: kubelet.port })),
        ),
      processes: () => serverProcesses(server),
      async close() {
        await conn.close();
        await server.stop();
        await kubelet.close();
      },
    };
  },
};

/** The SSH rows and TLS to a kubelet over SSH. */
export const cases: readonly BenchCase[] = [spokewire, ssh2Case, openssh, overSsh];
