/**
 * An embedded SSH server on 127.0.0.1 for tests and the bench, built on the `ssh2`
 * npm package's `Server`: the peer every machine has (OpenSSH's sshd may be missing).
 * It generates its own ed25519 host key and client key (no ssh-keygen), accepts
 * public-key authentication for that client key only (passwords and every other key
 * refused), and serves direct-tcpip channels to 127.0.0.1 targets with node:net, both
 * ways, with half-close and backpressure. Sessions and global requests are refused.
 *
 * Its interface is {@link SshServerFixture}, the one the sshd fixture (`sshd.ts`) has,
 * so a test or a bench case can run against either.
 *
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { publicKeyFingerprint, type SshServerFixture } from "./sshd.ts";

/** A running embedded ssh2 server. */
export interface Ssh2Server extends SshServerFixture {
  readonly kind: "ssh2";
  /** Target sockets open right now (for leak checks). */
  targetCount(): number;
  /** SSH connections open right now. */
  connectionCount(): number;
}

/** How to start the ssh2 server. */
export interface Ssh2ServerOptions {
  /** The ciphers the server offers, e.g. ["aes128-gcm@openssh.com"]; default ssh2's list. */
  readonly ciphers?: readonly string[];
  /** Which direct-tcpip targets may be opened; default: 127.0.0.1 only. */
  readonly permitTarget?: (host: string, port: number) => boolean;
  /** Wait for a target's TCP connect at most this long before refusing the channel. */
  readonly connectTimeoutMs?: number;
}

/** Why the ssh2 server cannot run here: never (ssh2 is a dev dependency). */
export function ssh2ServerSkipReason(): string | undefined {
  return undefined;
}

interface KeyPair {
  readonly private: string;
  readonly public: string;
}

/**
 * A fresh ed25519 key pair in OpenSSH format. About one key in 300 that
 * `ssh2.utils.generateKeyPairSync` writes is one its own parser then refuses ("Malformed
 * OpenSSH private key"; seen in CI as a whole conformance suite failing at server start),
 * so each is parsed back and a refused one generated again (bounded).
 */
function ed25519(comment: string): KeyPair {
  for (let attempt = 1; ; attempt++) {
    const k = ssh2.utils.generateKeyPairSync("ed25519", { comment });
    const parsed = ssh2.utils.parseKey(k.private);
    if (!(parsed instanceof Error)) return { private: k.private, public: k.public.trim() };
    if (attempt === 20) throw parsed;
  }
}

/** The key blob of a public key line, for comparing with what a client offers. */
function blobOf(line: string): Buffer {
  return Buffer.from(line.split(/\s+/)[1] ?? "", "base64");
}

/** A host public key line that belongs to no running server (for "wrong host key"). */
export function strangerHostKeyLine(): string {
  return ed25519("stranger-host").public;
}

/** Start the embedded ssh2 server on 127.0.0.1 (an ephemeral port). */
export async function startSsh2Server(options: Ssh2ServerOptions = {}): Promise<Ssh2Server> {
  const host = ed25519("ssh2-host");
  const client = ed25519("ssh2-client");
  const stranger = ed25519("ssh2-stranger");
  const clientBlob = blobOf(client.public);
  const parsedClient = ssh2.utils.parseKey(client.public);
  if (parsedClient instanceof Error) throw parsedClient;
  const clientPub = Array.isArray(parsedClient) ? parsedClient[0] : parsedClient;
  const user = userInfo().username;
  const dir = mkdtempSync(join(tmpdir(), "spokewire-ssh2-"));
  const clientKeyPath = join(dir, "client_ed25519");
  writeFileSync(clientKeyPath, client.private, { mode: 0o600 });
  writeFileSync(`${clientKeyPath}.pub`, `${client.public}\n`);
  const permit =
    options.permitTarget ?? ((h: string, _p: number) => h === "127.0.0.1" || h === "localhost");
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;

  const connections = new Set<ssh2.Connection>();
  const targets = new Set<Socket>();
  /** The SSH clients' TCP sockets (our own listener hands them to ssh2). */
  const sockets = new Set<Socket>();

  const server = new ssh2.Server(
    {
      hostKeys: [host.private],
      ident: "spokewire_test_ssh2", // RFC 4253: no minus sign in the software version
      ...(options.ciphers
        ? { algorithms: { cipher: [...options.ciphers] as ssh2.CipherAlgorithm[] } }
        : {}),
    },
    (conn) => {
      connections.add(conn);
      const mine = new Set<Socket>();
      conn.on("error", () => {});
      conn.on("close", () => {
        connections.delete(conn);
        // The SSH connection is gone: its targets are cut, as a dead tunnel would cut them.
        for (const s of mine) s.destroy();
      });
      conn.on("authentication", (ctx) => {
        if (ctx.method !== "publickey" || ctx.username !== user) {
          ctx.reject(["publickey"]);
          return;
        }
        if (ctx.key.algo !== "ssh-ed25519" || !Buffer.from(ctx.key.data).equals(clientBlob)) {
          ctx.reject(["publickey"]);
          return;
        }
        if (!ctx.signature) {
          ctx.accept(); // "this key would do": the client signs next
          return;
        }
        const ok = ctx.blob !== undefined && clientPub.verify(ctx.blob, ctx.signature) === true;
        if (ok) ctx.accept();
        else ctx.reject(["publickey"]);
      });
      conn.on("session", (_accept, reject) => reject());
      conn.on("tcpip", (accept, reject, info) => {
        if (!permit(info.destIP, info.destPort)) {
          reject();
          return;
        }
        forward(info.destIP, info.destPort, accept, reject, mine);
      });
    },
  );

  /** Connect to the target first; confirm the channel only once it accepted (as sshd does). */
  function forward(
    destHost: string,
    destPort: number,
    accept: () => ssh2.ServerChannel,
    reject: () => void,
    mine: Set<Socket>,
  ): void {
    const sock = netConnect({ host: destHost, port: destPort, allowHalfOpen: true });
    targets.add(sock);
    mine.add(sock);
    sock.once("close", () => {
      targets.delete(sock);
      mine.delete(sock);
    });
    const timer = setTimeout(() => sock.destroy(new Error("connect timeout")), connectTimeoutMs);
    sock.once("error", () => {
      clearTimeout(timer);
      if (!sock.connecting && sock.readyState !== "opening") return;
      reject();
    });
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.setNoDelay(true);
      splice(sock, accept());
    });
    sock.on("error", () => {});
  }

  /** Pipe a target socket and a channel both ways, with half-close and backpressure. */
  function splice(sock: Socket, ch: ssh2.ServerChannel): void {
    let sentEof = false;
    let gotEof = false;
    let channelClosed = false;
    const maybeClose = (): void => {
      if (sentEof && gotEof && !channelClosed) ch.close();
    };
    // target -> client: ssh2 waits for the client's window; pause the socket meanwhile.
    sock.on("data", (d: Buffer) => {
      if (channelClosed) return;
      if (!ch.write(d)) sock.pause();
    });
    ch.on("drain", () => sock.resume());
    sock.on("end", () => {
      if (channelClosed) {
        sock.destroy();
        return;
      }
      // EOF only once every queued byte went out; ch.end() would also close the channel
      // (ssh2's server side), which would end the client's half too.
      ch.write(Buffer.alloc(0), () => {
        sentEof = true;
        ch.eof();
        maybeClose();
      });
    });
    sock.on("error", () => {
      // The target failed (reset): as sshd does (a failed read is an EOF), EOF then CLOSE.
      if (channelClosed) return;
      if (!sentEof) {
        sentEof = true;
        ch.eof();
      }
      ch.close();
    });
    // client -> target: pipe() pauses the channel (and so its window) when the socket is full.
    ch.pipe(sock, { end: false });
    ch.on("end", () => {
      // EOF or CLOSE from the client: like sshd, a FIN to the target.
      gotEof = true;
      sock.end();
      maybeClose();
    });
    ch.on("close", () => {
      channelClosed = true;
      sock.resume();
      if (sock.readableEnded || sock.destroyed) sock.destroy();
      else sock.end();
    });
    ch.on("error", () => sock.destroy());
  }

  // Our own listener hands each socket to ssh2 (Server.injectSocket): Nagle off, and
  // stop() can destroy every socket, whatever state its client is in.
  const listener = createServer((sock) => {
    sock.setNoDelay(true);
    sockets.add(sock);
    sock.once("close", () => sockets.delete(sock));
    server.injectSocket(sock);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(0, "127.0.0.1", () => {
      listener.off("error", reject);
      resolve();
    });
  });
  listener.on("error", () => {});
  server.on("error", () => {});
  const addr = listener.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  let stopped = false;
  return {
    kind: "ssh2",
    host: "127.0.0.1",
    port,
    user,
    pid: undefined,
    clientKey: client.private,
    clientKeyPath,
    strangerKey: stranger.private,
    hostKey: host.public,
    knownHosts() {
      return `[127.0.0.1]:${port} ${host.public.split(" ").slice(0, 2).join(" ")}\n`;
    },
    fingerprint() {
      return publicKeyFingerprint(host.public);
    },
    targetCount: () => targets.size,
    connectionCount: () => connections.size,
    async stop() {
      if (stopped) return;
      stopped = true;
      const closed = new Promise<void>((r) => listener.close(() => r()));
      for (const s of targets) s.destroy();
      for (const s of sockets) s.destroy();
      await closed;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
