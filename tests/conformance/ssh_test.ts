import { createServer, connect as netConnect, type Socket } from "node:net";
import { after } from "node:test";
import { type Channel, DEFAULT_CHANNEL_CONFIG, listenTcp } from "../../mod.ts";
import { DEFAULT_SSH_CLIENT_CONFIG, SshTunnelDialer } from "../../src/ssh/mod.ts";
import { describeChannelConformance } from "../../src/testing/mod.ts";
import { kernelTcpBufferMax } from "../_harness/kernel.ts";
import { otherHostKeyLine, startSshd } from "../_harness/sshd.ts";

// a = a direct-tcpip channel through a real OpenSSH sshd; b = the TCP channel the
// target listener accepted. Between sshd and the target sits a plain TCP relay,
// so that kill() can cut the whole path as a crash would: the SSH connection
// (client side) and the far leg (sshd side). sshd itself only ever closes its
// target socket with a FIN, so without cutting the far leg the target could not
// tell a dead tunnel from a clean end.
const sshd = await startSshd();
const target = await listenTcp({ host: "127.0.0.1", port: 0 });
const realPort = Number(target.addr.slice(target.addr.lastIndexOf(":") + 1));
/** Relay legs by the local port of their socket towards the target. */
const legs = new Map<number, Socket[]>();
const relaySockets = new Set<Socket>();
const relay = createServer({ allowHalfOpen: true }, (fromSshd) => {
  const toTarget = netConnect({ host: "127.0.0.1", port: realPort, allowHalfOpen: true });
  const pair = [fromSshd, toTarget];
  for (const x of pair) {
    relaySockets.add(x);
    x.on("close", () => relaySockets.delete(x));
  }
  toTarget.once("connect", () => legs.set(toTarget.localPort!, pair));
  for (const [x, y] of [
    [fromSshd, toTarget],
    [toTarget, fromSshd],
  ] as const) {
    x.pipe(y);
    x.on("error", () => y.resetAndDestroy());
    x.on("close", () => legs.delete(toTarget.localPort ?? -1));
  }
});
await new Promise<void>((r) => relay.listen(0, "127.0.0.1", () => r()));
const targetPort = (relay.address() as { port: number }).port;
const accepted = target[Symbol.asyncIterator]();
const node = { host: sshd.host, port: sshd.port };
const dialer = new SshTunnelDialer({
  username: sshd.user,
  privateKey: sshd.clientKeys.ed25519,
  hostKeys: { knownHosts: sshd.knownHosts() },
});

after(async () => {
  dialer.close();
  for (const x of relaySockets) x.destroy();
  await new Promise<void>((r) => relay.close(() => r()));
  await target.close();
  await sshd.stop();
});

// Everything a writer can get accepted while nobody reads: our write queue and
// transport queue, sshd's 2 MiB window for us, the target socket's kernel buffers
// (and ours), the readable's buffer, and in the other direction our receive window.
const bound =
  3 * kernelTcpBufferMax() +
  2 * 1024 * 1024 +
  DEFAULT_SSH_CLIENT_CONFIG.receiveWindow +
  DEFAULT_CHANNEL_CONFIG.readHighWaterMark +
  2 * DEFAULT_CHANNEL_CONFIG.writeHighWaterMark +
  1024 * 1024;

describeChannelConformance({
  name: "ssh direct-tcpip via OpenSSH sshd",
  bufferBound: bound,
  numRuns: 8,
  // SSH has no channel reset: sshd turns our CHANNEL_CLOSE into a FIN to the target.
  abortReachesPeer: false,
  async pair() {
    const [a, got] = await Promise.all([
      dialer.dial({ node, host: "127.0.0.1", port: targetPort }),
      accepted.next(),
    ]);
    const b = got.value as Channel;
    return {
      a,
      b,
      // A crash: the SSH TCP connection is destroyed under every channel on it,
      // and the far leg (sshd to target) is cut with a reset.
      kill: () => {
        dialer.connection(node).then((c) => c.kill());
        const port = Number((b as { remoteAddress?: string }).remoteAddress?.split(":")[1]);
        for (const s of legs.get(port) ?? []) s.resetAndDestroy();
      },
    };
  },
  dialWithSignal: async (signal) => {
    const ch = await dialer.dial({ node, host: "127.0.0.1", port: targetPort }, { signal });
    // The accepted end is not used by this case.
    accepted.next().then((r) => (r.value as Channel | undefined)?.abort());
    return ch;
  },
  liveResources: () => dialer.channelCount,
  untrustedPeer: async () => {
    const d = new SshTunnelDialer({
      username: sshd.user,
      privateKey: sshd.clientKeys.ed25519,
      hostKeys: { knownHosts: `[127.0.0.1]:${sshd.port} ${otherHostKeyLine()}\n` },
    });
    try {
      return await d.dial({ node, host: "127.0.0.1", port: targetPort });
    } finally {
      d.close();
    }
  },
});
