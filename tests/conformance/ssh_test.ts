import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { after, describe } from "node:test";
import { type Channel, DEFAULT_CHANNEL_CONFIG, type Listener, listenTcp } from "../../mod.ts";
import { DEFAULT_SSH_CLIENT_CONFIG, SshTunnelDialer } from "../../src/ssh/mod.ts";
import { startSsh2Server, strangerHostKeyLine } from "../../src/testing/_fixtures/ssh2_server.ts";
import {
  otherHostKeyLine,
  type SshServerFixture,
  startSshd,
} from "../../src/testing/_fixtures/sshd.ts";
import { describeChannelConformance } from "../../src/testing/mod.ts";
import { kernelTcpBufferMax } from "../_harness/kernel.ts";
import { peerSkip } from "../_harness/peers.ts";

// a = a direct-tcpip channel through an SSH server; b = the TCP channel the target
// listener accepted. Two servers: the embedded ssh2 Server (always: it ships with npm)
// and a real OpenSSH sshd (when installed). Between the server and the target sits a
// plain TCP relay, so that kill() can cut the whole path as a crash would: the SSH
// connection (client side) and the far leg (server side). Neither server closes its
// target socket with anything but a FIN, so without cutting the far leg the target
// could not tell a dead tunnel from a clean end.

/** Everything one registration holds, started on first use (so a skipped one starts nothing). */
interface Env {
  readonly server: SshServerFixture;
  readonly target: Listener;
  readonly accepted: AsyncIterator<Channel>;
  readonly relay: Server;
  readonly relaySockets: Set<Socket>;
  /** Relay legs by the local port of their socket towards the target. */
  readonly legs: Map<number, Socket[]>;
  readonly targetPort: number;
  readonly dialer: SshTunnelDialer;
  readonly node: { host: string; port: number };
}

async function setup(start: () => Promise<SshServerFixture>): Promise<Env> {
  const server = await start();
  const target = await listenTcp({ host: "127.0.0.1", port: 0 });
  const realPort = Number(target.addr.slice(target.addr.lastIndexOf(":") + 1));
  const legs = new Map<number, Socket[]>();
  const relaySockets = new Set<Socket>();
  const relay = createServer({ allowHalfOpen: true }, (fromServer) => {
    const toTarget = netConnect({ host: "127.0.0.1", port: realPort, allowHalfOpen: true });
    const pair = [fromServer, toTarget];
    for (const x of pair) {
      relaySockets.add(x);
      x.on("close", () => relaySockets.delete(x));
    }
    toTarget.once("connect", () => legs.set(toTarget.localPort!, pair));
    for (const [x, y] of [
      [fromServer, toTarget],
      [toTarget, fromServer],
    ] as const) {
      x.pipe(y);
      x.on("error", () => y.resetAndDestroy());
      x.on("close", () => legs.delete(toTarget.localPort ?? -1));
    }
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", () => r()));
  const dialer = new SshTunnelDialer({
    username: server.user,
    privateKey: server.clientKey,
    hostKeys: { knownHosts: server.knownHosts() },
  });
  return {
    server,
    target,
    accepted: target[Symbol.asyncIterator](),
    relay,
    relaySockets,
    legs,
    targetPort: (relay.address() as { port: number }).port,
    dialer,
    node: { host: server.host, port: server.port },
  };
}

async function teardown(env: Env): Promise<void> {
  env.dialer.close();
  for (const x of env.relaySockets) x.destroy();
  await new Promise<void>((r) => env.relay.close(() => r()));
  await env.target.close();
  await env.server.stop();
}

// Everything a writer can get accepted while nobody reads: our write queue and
// transport queue, the server's window for us and what it buffers towards the target
// socket (`serverBuffers`), the target socket's kernel buffers (and ours), the
// readable's buffer, and in the other direction our receive window.
function bound(serverBuffers: number): number {
  return (
    3 * kernelTcpBufferMax() +
    serverBuffers +
    DEFAULT_SSH_CLIENT_CONFIG.receiveWindow +
    DEFAULT_CHANNEL_CONFIG.readHighWaterMark +
    2 * DEFAULT_CHANNEL_CONFIG.writeHighWaterMark +
    1024 * 1024
  );
}

function register(
  name: string,
  start: () => Promise<SshServerFixture>,
  strangerHostKey: () => string,
  serverBuffers: number,
): void {
  let started: Promise<Env> | undefined;
  let env: Env | undefined;
  const ready = (): Promise<Env> => {
    started ??= setup(start).then((e) => {
      env = e;
      return e;
    });
    return started;
  };
  after(async () => {
    if (started) await teardown(await started);
  });
  describeChannelConformance({
    name,
    bufferBound: bound(serverBuffers),
    numRuns: 8,
    // SSH has no channel reset: the server turns our CHANNEL_CLOSE into a FIN to the target.
    abortReachesPeer: false,
    async pair() {
      const e = await ready();
      const [a, got] = await Promise.all([
        e.dialer.dial({ node: e.node, host: "127.0.0.1", port: e.targetPort }),
        e.accepted.next(),
      ]);
      const b = got.value as Channel;
      return {
        a,
        b,
        // A crash: the SSH TCP connection is destroyed under every channel on it,
        // and the far leg (server to target) is cut with a reset.
        kill: () => {
          e.dialer.connection(e.node).then((c) => c.kill());
          const port = Number((b as { remoteAddress?: string }).remoteAddress?.split(":")[1]);
          for (const s of e.legs.get(port) ?? []) s.resetAndDestroy();
        },
      };
    },
    dialWithSignal: async (signal) => {
      const e = await ready();
      const ch = await e.dialer.dial(
        { node: e.node, host: "127.0.0.1", port: e.targetPort },
        { signal },
      );
      // The accepted end is not used by this case.
      e.accepted.next().then((r) => (r.value as Channel | undefined)?.abort());
      return ch;
    },
    liveResources: () => env?.dialer.channelCount ?? 0,
    untrustedPeer: async () => {
      const e = await ready();
      const d = new SshTunnelDialer({
        username: e.server.user,
        privateKey: e.server.clientKey,
        hostKeys: { knownHosts: `[127.0.0.1]:${e.server.port} ${strangerHostKey()}\n` },
      });
      try {
        return await d.dial({ node: e.node, host: "127.0.0.1", port: e.targetPort });
      } finally {
        d.close();
      }
    },
  });
}

// The ssh2 server holds up to its 2 MiB window plus its channel's 2 MiB readable and
// 2 MiB writable buffers.
register(
  "ssh direct-tcpip via the ssh2 server",
  () => startSsh2Server(),
  strangerHostKeyLine,
  6 * 1024 * 1024,
);

describe("SSH against OpenSSH sshd", { skip: peerSkip("sshd", "ssh-keygen") }, () => {
  // sshd holds its 2 MiB window for us.
  register(
    "ssh direct-tcpip via OpenSSH sshd",
    () => startSshd(),
    otherHostKeyLine,
    2 * 1024 * 1024,
  );
});
