import assert from "node:assert/strict";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import {
  type Channel,
  type Listener,
  listenTcp,
  PeerVerificationError,
  SpokewireError,
} from "../../mod.ts";
import {
  parseOpenSshPrivateKey,
  SshConnection,
  type SshConnectOptions,
  type SshPrivateKey,
  SshTunnelDialer,
} from "../../src/ssh/mod.ts";
import { otherHostKeyLine, type Sshd, startSshd } from "../../src/testing/_fixtures/sshd.ts";
import { peerSkip } from "../_harness/peers.ts";

/** OpenSSH is needed here; the same checks against the embedded ssh2 server run everywhere (ssh_ssh2_server_test). */
const SSHD = peerSkip("sshd", "ssh-keygen");

// ---- shared fixtures ------------------------------------------------------------------

const opened: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const f of opened.reverse()) await f();
});

async function sshd(extra: string[] = []): Promise<Sshd> {
  const s = await startSshd({ extra });
  opened.push(() => s.stop());
  return s;
}

/** An echo target on 127.0.0.1. */
async function echoTarget(): Promise<{ port: number; listener: Listener }> {
  const listener = await listenTcp({ host: "127.0.0.1", port: 0 });
  opened.push(() => listener.close());
  (async () => {
    for await (const ch of listener) ch.readable.pipeTo(ch.writable).catch(() => {});
  })();
  return { port: Number(listener.addr.slice(listener.addr.lastIndexOf(":") + 1)), listener };
}

/** A node:net server that writes `data` to every connection and ends it. */
async function sourceServer(data: Uint8Array): Promise<number> {
  const srv = createServer((s) => {
    s.on("error", () => {});
    s.end(data);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  opened.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as { port: number }).port;
}

function options(s: Sshd, extra: Partial<SshConnectOptions> = {}): SshConnectOptions {
  return {
    host: s.host,
    port: s.port,
    username: s.user,
    privateKey: s.clientKeys.ed25519,
    hostKeys: { knownHosts: s.knownHosts() },
    ...extra,
  };
}

async function connect(o: SshConnectOptions): Promise<SshConnection> {
  const c = await SshConnection.connect(o);
  opened.push(() => c.close());
  return c;
}

/** Deterministic test data: 64 KiB random block, each copy stamped with its index. */
const BLOCK = crypto.getRandomValues(new Uint8Array(64 * 1024));
function blockAt(i: number): Uint8Array {
  const b = BLOCK.slice();
  new DataView(b.buffer).setUint32(0, i);
  return b;
}

/** Write `blocks` blocks through `ch`, read the echo back, compare every byte. */
async function echoCheck(ch: Channel, blocks: number): Promise<number> {
  const w = ch.writable.getWriter();
  const writing = (async () => {
    for (let i = 0; i < blocks; i++) await w.write(blockAt(i));
    await w.close();
  })();
  const r = ch.readable.getReader();
  let n = 0;
  let expect = blockAt(0);
  for (let i = 0; i < 10_000_000; i++) {
    const x = await r.read();
    if (x.done) break;
    for (let j = 0; j < x.value.byteLength; j++) {
      const pos = n + j;
      if (pos % BLOCK.byteLength === 0) expect = blockAt(pos / BLOCK.byteLength);
      if (x.value[j] !== expect[pos % BLOCK.byteLength]) {
        throw new Error(`byte ${pos} differs`);
      }
    }
    n += x.value.byteLength;
  }
  await writing;
  return n;
}

function code(e: unknown): string | undefined {
  return e instanceof SpokewireError ? e.code : undefined;
}

// ---- the suite -------------------------------------------------------------------------

// Without OpenSSH every suite below is skipped and `main` is never read.
const main: Sshd = SSHD ? (undefined as unknown as Sshd) : await sshd();
const echo = await echoTarget();

describe("SSH client against OpenSSH sshd: interop matrix", { skip: SSHD }, () => {
  const combos: Array<[string, SshConnectOptions["algorithms"]]> = [
    ["kex curve25519-sha256", { kex: ["curve25519-sha256"] }],
    ["kex curve25519-sha256@libssh.org", { kex: ["curve25519-sha256@libssh.org"] }],
    ["kex ecdh-sha2-nistp256", { kex: ["ecdh-sha2-nistp256"] }],
    ["host key ssh-ed25519", { hostKey: ["ssh-ed25519"] }],
    ["host key ecdsa-sha2-nistp256", { hostKey: ["ecdsa-sha2-nistp256"] }],
    ["host key rsa-sha2-512", { hostKey: ["rsa-sha2-512"] }],
    ["host key rsa-sha2-256", { hostKey: ["rsa-sha2-256"] }],
    ["cipher aes128-gcm@openssh.com", { ciphers: ["aes128-gcm@openssh.com"] }],
    ["cipher aes256-gcm@openssh.com", { ciphers: ["aes256-gcm@openssh.com"] }],
    ["cipher chacha20-poly1305@openssh.com", { ciphers: ["chacha20-poly1305@openssh.com"] }],
    [
      "aes128-ctr + hmac-sha2-256-etm",
      { ciphers: ["aes128-ctr"], macs: ["hmac-sha2-256-etm@openssh.com"] },
    ],
    [
      "aes128-ctr + hmac-sha2-512-etm",
      { ciphers: ["aes128-ctr"], macs: ["hmac-sha2-512-etm@openssh.com"] },
    ],
    [
      "aes256-ctr + hmac-sha2-256-etm",
      { ciphers: ["aes256-ctr"], macs: ["hmac-sha2-256-etm@openssh.com"] },
    ],
    [
      "aes256-ctr + hmac-sha2-512-etm",
      { ciphers: ["aes256-ctr"], macs: ["hmac-sha2-512-etm@openssh.com"] },
    ],
  ];
  for (const [name, algorithms] of combos) {
    it(`${name}: 1 MiB echoes intact and the algorithm was used`, async () => {
      const c = await connect(options(main, { algorithms }));
      const want = { ...algorithms };
      if (want.kex) assert.equal(c.algorithms.kex, want.kex[0]);
      if (want.hostKey) assert.equal(c.algorithms.hostKey, want.hostKey[0]);
      if (want.ciphers) assert.equal(c.algorithms.cipher, want.ciphers[0]);
      if (want.macs) assert.equal(c.algorithms.mac, want.macs[0]);
      const ch = await c.openDirectTcpip({ host: "127.0.0.1", port: echo.port });
      assert.equal(await echoCheck(ch, 16), 16 * BLOCK.byteLength);
      assert.equal((await ch.closed).kind, "closed");
      c.close();
    });
  }
  for (const kind of ["ed25519", "ecdsa", "rsa"] as const) {
    it(`user key ${kind} authenticates`, async () => {
      const c = await connect(options(main, { privateKey: main.clientKeys[kind] }));
      assert.equal(c.peer.scheme, "ssh-host-key");
      const ch = await c.openDirectTcpip({ host: "127.0.0.1", port: echo.port });
      assert.equal(await echoCheck(ch, 2), 2 * BLOCK.byteLength);
      c.close();
    });
  }
  it("the peer identity is the host key's SHA256 fingerprint", async () => {
    const c = await connect(options(main, { algorithms: { hostKey: ["ssh-ed25519"] } }));
    assert.equal(c.peer.id, main.fingerprint("ed25519"));
    c.close();
  });
  it("a pinned SHA256: fingerprint is accepted", async () => {
    const c = await connect(
      options(main, {
        hostKeys: { fingerprints: [main.fingerprint("ecdsa")] },
        algorithms: { hostKey: ["ecdsa-sha2-nistp256"] },
      }),
    );
    c.close();
  });
  it("keepalive@openssh.com gets an answer; many channels share one connection", async () => {
    const c = await connect(options(main));
    await c.ping();
    const chans = await Promise.all(
      Array.from({ length: 20 }, () => c.openDirectTcpip({ host: "127.0.0.1", port: echo.port })),
    );
    const sizes = await Promise.all(chans.map((ch) => echoCheck(ch, 3)));
    assert.deepEqual(
      sizes,
      chans.map(() => 3 * BLOCK.byteLength),
    );
    c.close();
  });
  it("client-initiated rekey by bytes while a channel streams", async () => {
    const c = await connect(options(main, { config: { rekeyBytes: 2 * 1024 * 1024 } }));
    const ch = await c.openDirectTcpip({ host: "127.0.0.1", port: echo.port });
    assert.equal(await echoCheck(ch, 160), 160 * BLOCK.byteLength);
    assert.ok(c.kexCount >= 5, `only ${c.kexCount} key exchanges`);
    c.close();
  });
  it("client-initiated rekey by packet count and by time", async () => {
    const c = await connect(
      options(main, { config: { rekeyPackets: 1024, rekeyIntervalMs: 1000 } }),
    );
    for (let i = 0; i < 600; i++) await c.ping();
    assert.ok(c.kexCount >= 2, `no rekey after 1200 packets (kexCount ${c.kexCount})`);
    const before = c.kexCount;
    for (let i = 0; i < 50 && c.kexCount === before; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(c.kexCount > before, "no rekey after the interval");
    await c.ping();
    c.close();
  });
});

describe("SSH host key verification happens before any credential", { skip: SSHD }, () => {
  /** A key whose signing is recorded: signing is the credential. */
  async function spyKey(): Promise<{ key: SshPrivateKey; signed: () => number }> {
    const k = await parseOpenSshPrivateKey(main.clientKeys.ed25519);
    let n = 0;
    return {
      key: {
        ...k,
        sign: (d, a) => {
          n++;
          return k.sign(d, a);
        },
      },
      signed: () => n,
    };
  }
  const cases: Array<[string, () => string, string]> = [
    [
      "wrong host key",
      () => `[127.0.0.1]:${main.port} ${otherHostKeyLine()}\n`,
      "host-key-mismatch",
    ],
    ["unknown host", () => `[127.0.0.1]:1 ${otherHostKeyLine()}\n`, "host-key-unknown"],
    [
      "revoked host key",
      () => `${main.knownHosts()}@revoked [127.0.0.1]:${main.port} ${main.hostKeys.ed25519}\n`,
      "host-key-revoked",
    ],
    [
      "@cert-authority only",
      () => `@cert-authority [127.0.0.1]:${main.port} ${otherHostKeyLine()}\n`,
      "unsupported",
    ],
  ];
  for (const [name, kh, reason] of cases) {
    it(`${name} -> PeerVerificationError ${reason}, nothing signed`, async () => {
      const spy = await spyKey();
      await assert.rejects(
        SshConnection.connect(
          options(main, {
            hostKeys: { knownHosts: kh() },
            privateKey: spy.key,
            algorithms: { hostKey: ["ssh-ed25519"] },
          }),
        ),
        (e) => {
          assert.ok(e instanceof PeerVerificationError, `got ${e}`);
          assert.equal(e.reason, reason);
          return true;
        },
      );
      assert.equal(spy.signed(), 0, "a credential was produced before the host key was trusted");
    });
  }
  it("hashed known_hosts entries match", async () => {
    const { hashHostName } = await import("../../src/ssh/mod.ts");
    const line = `${hashHostName(`[127.0.0.1]:${main.port}`)} ${main.hostKeys.ed25519}\n`;
    const c = await connect(options(main, { hostKeys: { knownHosts: line } }));
    c.close();
  });
  it("trust on first use only through its option; the line it hands over works next time", async () => {
    let saved = "";
    const c = await connect(
      options(main, {
        hostKeys: {
          trustOnFirstUse: (l) => {
            saved = l;
          },
        },
        algorithms: { hostKey: ["ecdsa-sha2-nistp256"] },
      }),
    );
    c.close();
    assert.match(saved, /^\[127\.0\.0\.1\]:\d+ ecdsa-sha2-nistp256 /);
    const again = await connect(options(main, { hostKeys: { knownHosts: saved } }));
    assert.equal(again.algorithms.hostKey, "ecdsa-sha2-nistp256");
    again.close();
  });
  it("no host key policy at all is a TypeError", async () => {
    await assert.rejects(SshConnection.connect(options(main, { hostKeys: {} })), TypeError);
  });
});

describe("SSH failures are typed", { skip: SSHD }, () => {
  it("a wrong user key -> AUTH_FAILED", async () => {
    await assert.rejects(
      SshConnection.connect(options(main, { privateKey: main.strangerKey })),
      (e) => {
        assert.equal(code(e), "AUTH_FAILED", `got ${e}`);
        return true;
      },
    );
  });
  it("AllowTcpForwarding no -> DIAL_FAILED", async () => {
    const s = await sshd(["AllowTcpForwarding no"]);
    const c = await connect(options(s));
    await assert.rejects(c.openDirectTcpip({ host: "127.0.0.1", port: echo.port }), (e) => {
      assert.equal(code(e), "DIAL_FAILED", `got ${e}`);
      return true;
    });
    assert.ok(c.alive);
    c.close();
  });
  it("a refused forward fails only that dial; a live channel goes on", async () => {
    const s = await sshd([`PermitOpen 127.0.0.1:${echo.port}`]);
    const c = await connect(options(s));
    const ok = await c.openDirectTcpip({ host: "127.0.0.1", port: echo.port });
    const w = ok.writable.getWriter();
    await w.write(blockAt(0));
    await assert.rejects(
      c.openDirectTcpip({ host: "127.0.0.1", port: 1 }),
      (e) => code(e) === "DIAL_FAILED",
    );
    await w.close();
    const r = ok.readable.getReader();
    let n = 0;
    for (let i = 0; i < 1000; i++) {
      const x = await r.read();
      if (x.done) break;
      n += x.value.byteLength;
    }
    assert.equal(n, BLOCK.byteLength);
    c.close();
  });
  it("a proxy that flips one byte tears the connection down; no corrupted byte is delivered", async () => {
    const size = 4 * 1024 * 1024;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += BLOCK.byteLength) data.set(BLOCK, i);
    const srcPort = await sourceServer(data);
    for (const cipher of [
      "aes128-gcm@openssh.com",
      "chacha20-poly1305@openssh.com",
      "aes128-ctr",
    ]) {
      const proxy = await flipProxy(main.port, 1024 * 1024 + 777);
      const c = await SshConnection.connect(
        options(main, {
          port: proxy.port,
          hostKeys: { fingerprints: [main.fingerprint("ed25519")] },
          algorithms: { hostKey: ["ssh-ed25519"], ciphers: [cipher] },
        }),
      );
      const ch = await c.openDirectTcpip({ host: "127.0.0.1", port: srcPort });
      const r = ch.readable.getReader();
      let n = 0;
      let err: unknown;
      try {
        for (let i = 0; i < 100_000; i++) {
          const x = await r.read();
          if (x.done) break;
          for (let j = 0; j < x.value.byteLength; j++) {
            assert.equal(
              x.value[j],
              data[n + j],
              `${cipher}: corrupted byte delivered at ${n + j}`,
            );
          }
          n += x.value.byteLength;
        }
      } catch (e) {
        err = e;
      }
      assert.ok(n < size, `${cipher}: the whole stream arrived despite the flipped byte`);
      assert.ok(err instanceof SpokewireError, `${cipher}: expected a typed error, got ${err}`);
      assert.ok(["CHANNEL_RESET", "PROTOCOL_ERROR"].includes(err.code), `${cipher}: ${err.code}`);
      assert.equal(c.alive, false);
      assert.equal(code(await c.closed), "PROTOCOL_ERROR");
      await proxy.close();
    }
  });
  it("random bytes as the banner -> a typed error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), async (junk) => {
        const fake = await fakeServer(junk);
        try {
          await SshConnection.connect(
            options(main, { port: fake.port, config: { handshakeTimeoutMs: 3000 } }),
          );
          assert.fail("connected to a fake server");
        } catch (e) {
          assert.ok(e instanceof SpokewireError, `untyped error ${e}`);
          assert.ok(["PROTOCOL_ERROR", "DIAL_FAILED", "TIMEOUT"].includes(e.code), e.code);
        } finally {
          await fake.close();
        }
      }),
      { numRuns: 15 },
    );
  });
  it("random bytes as packets after a valid banner -> a typed error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (junk) => {
        const banner = new TextEncoder().encode("SSH-2.0-fake\r\n");
        const all = new Uint8Array(banner.byteLength + junk.byteLength);
        all.set(banner);
        all.set(junk, banner.byteLength);
        const fake = await fakeServer(all);
        try {
          await SshConnection.connect(
            options(main, { port: fake.port, config: { handshakeTimeoutMs: 3000 } }),
          );
          assert.fail("connected to a fake server");
        } catch (e) {
          assert.ok(e instanceof SpokewireError, `untyped error ${e}`);
          assert.ok(["PROTOCOL_ERROR", "DIAL_FAILED", "TIMEOUT"].includes(e.code), e.code);
        } finally {
          await fake.close();
        }
      }),
      { numRuns: 15 },
    );
  });
});

describe("SSH rekeying under a server with RekeyLimit 1M 5s", { skip: SSHD }, () => {
  it("a 64 MiB echo (64 MiB each way) arrives intact across many server-initiated rekeys", async () => {
    const s = await sshd(["RekeyLimit 1M 5s"]);
    const c = await connect(options(s));
    const ch = await c.openDirectTcpip({ host: "127.0.0.1", port: echo.port });
    const blocks = 1024; // 64 MiB
    assert.equal(await echoCheck(ch, blocks), blocks * BLOCK.byteLength);
    assert.ok(c.kexCount > 50, `only ${c.kexCount} key exchanges for 128 MiB at 1 MiB`);
    c.close();
  });
});

describe("SSH liveness and the tunnel dialer", { skip: SSHD }, () => {
  it("sshd's keepalive@openssh.com probes (ClientAliveInterval 1) are answered; the connection stays up", async () => {
    const s = await sshd(["ClientAliveInterval 1", "ClientAliveCountMax 1"]);
    const c = await connect(options(s));
    const ch = await c.openDirectTcpip({ host: "127.0.0.1", port: echo.port });
    const w = ch.writable.getWriter();
    await w.write(blockAt(0));
    // Wait (bounded) for sshd's probes; an unanswered one would drop us within 2 s.
    for (let i = 0; i < 150 && c.answeredRequests < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(c.answeredRequests >= 3, `only ${c.answeredRequests} probes answered`);
    assert.ok(c.alive);
    await w.close();
    const r = ch.readable.getReader();
    let n = 0;
    for (let i = 0; i < 1000; i++) {
      const x = await r.read();
      if (x.done) break;
      n += x.value.byteLength;
    }
    assert.equal(n, BLOCK.byteLength);
    c.close();
  });
  it("one connection per node is reused; when it dies every channel errors at once and the next dial reconnects", async () => {
    const dialer = new SshTunnelDialer({
      username: main.user,
      privateKey: main.clientKeys.ed25519,
      hostKeys: { knownHosts: main.knownHosts() },
    });
    opened.push(() => dialer.close());
    const node = { host: main.host, port: main.port };
    const chans = await Promise.all(
      [1, 2, 3].map(() => dialer.dial({ node, host: "127.0.0.1", port: echo.port })),
    );
    const first = await dialer.connection(node);
    assert.equal(dialer.channelCount, 3);
    first.kill();
    const infos = await Promise.all(chans.map((ch) => ch.closed));
    for (const info of infos) {
      assert.equal(info.kind, "reset");
      assert.equal(info.error?.code, "CHANNEL_RESET");
    }
    const again = await dialer.dial({ node, host: "127.0.0.1", port: echo.port });
    const second = await dialer.connection(node);
    assert.notEqual(second, first);
    assert.equal(await echoCheck(again, 2), 2 * BLOCK.byteLength);
    dialer.close();
  });
  it("a dialer whose node refuses connections fails with DIAL_FAILED and backs off", async () => {
    const { freePort } = await import("../../src/testing/_fixtures/sshd.ts");
    const dead = await freePort();
    const dialer = new SshTunnelDialer({
      username: main.user,
      privateKey: main.clientKeys.ed25519,
      hostKeys: { knownHosts: main.knownHosts() },
      config: { reconnectMinDelayMs: 300 },
    });
    opened.push(() => dialer.close());
    const node = { host: "127.0.0.1", port: dead };
    await assert.rejects(
      dialer.dial({ node, host: "127.0.0.1", port: 1 }),
      (e) => code(e) === "DIAL_FAILED",
    );
    const t0 = Date.now();
    await assert.rejects(
      dialer.dial({ node, host: "127.0.0.1", port: 1 }),
      (e) => code(e) === "DIAL_FAILED",
    );
    assert.ok(Date.now() - t0 >= 250, "the second attempt did not wait for the backoff");
    dialer.close();
  });
});

// ---- network helpers ---------------------------------------------------------------------

async function fakeServer(bytes: Uint8Array): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<Socket>();
  const srv: Server = createServer((s) => {
    socks.add(s);
    s.on("error", () => {});
    s.on("close", () => socks.delete(s));
    s.end(bytes);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return {
    port: (srv.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** A TCP proxy to `port` that flips one bit of the server-to-client stream at byte `at`. */
async function flipProxy(
  port: number,
  at: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<Socket>();
  const srv = createServer((client) => {
    const upstream = netConnect({ host: "127.0.0.1", port });
    for (const s of [client, upstream]) {
      socks.add(s);
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => socks.delete(s));
    }
    let seen = 0;
    upstream.on("data", (d: Uint8Array) => {
      if (seen <= at && at < seen + d.byteLength) d[at - seen]! ^= 0x01;
      seen += d.byteLength;
      client.write(d);
    });
    client.on("data", (d: Uint8Array) => upstream.write(d));
    upstream.on("end", () => client.end());
    client.on("end", () => upstream.end());
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return {
    port: (srv.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}
