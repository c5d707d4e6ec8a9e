// spokewire's SSH client against the ssh2 npm package's Server (the embedded peer every
// machine has): direct-tcpip bytes both ways, half-close, host key and client key
// refusals, and a refused target failing only its own dial.
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, describe, it } from "node:test";
import { PeerVerificationError, SpokewireError } from "../../mod.ts";
import {
  parseOpenSshPrivateKey,
  SshConnection,
  type SshConnectOptions,
  type SshPrivateKey,
} from "../../src/ssh/mod.ts";
import {
  type Ssh2Server,
  startSsh2Server,
  strangerHostKeyLine,
} from "../../src/testing/_fixtures/ssh2_server.ts";
import { freePort } from "../../src/testing/_fixtures/sshd.ts";

const opened: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const f of opened.reverse()) await f();
});

function options(s: Ssh2Server, extra: Partial<SshConnectOptions> = {}): SshConnectOptions {
  return {
    host: s.host,
    port: s.port,
    username: s.user,
    privateKey: s.clientKey,
    hostKeys: { knownHosts: s.knownHosts() },
    ...extra,
  };
}

async function connect(o: SshConnectOptions): Promise<SshConnection> {
  const c = await SshConnection.connect(o);
  opened.push(() => c.close());
  return c;
}

function code(e: unknown): string | undefined {
  return e instanceof SpokewireError ? e.code : undefined;
}

/** A node:net target that records what it received and runs `serve` on each socket. */
async function target(serve: (s: Socket) => void): Promise<number> {
  const socks = new Set<Socket>();
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on("close", () => socks.delete(s));
    s.on("error", () => {});
    serve(s);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  opened.push(
    () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  );
  return (srv.address() as { port: number }).port;
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

async function readAll(
  r: ReadableStreamDefaultReader<Uint8Array>,
  max: number,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const x = await r.read();
    if (x.done) break;
    parts.push(x.value.slice());
    n += x.value.byteLength;
    if (n > max) throw new Error(`more than ${max} bytes`);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

const server = await startSsh2Server();
opened.push(() => server.stop());

describe("SSH client against the ssh2 Server (embedded peer)", () => {
  for (const cipher of ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]) {
    it(`${cipher}: 2 MiB up and 3 MiB down arrive exactly, with half-close both ways`, async () => {
      const up = pattern(2 * 1024 * 1024, 7);
      const down = pattern(3 * 1024 * 1024, 11);
      // The target reads to the client's FIN, then answers and FINs in turn.
      let received: Promise<Uint8Array> | undefined;
      const port = await target((s) => {
        received = new Promise((resolve) => {
          const parts: Buffer[] = [];
          s.on("data", (d: Buffer) => parts.push(d));
          s.on("end", () => {
            resolve(new Uint8Array(Buffer.concat(parts)));
            s.end(down);
          });
        });
      });
      const c = await connect(options(server, { algorithms: { ciphers: [cipher] } }));
      assert.equal(c.algorithms.cipher, cipher);
      const ch = await c.openDirectTcpip({ host: "127.0.0.1", port });
      const w = ch.writable.getWriter();
      for (let i = 0; i < up.byteLength; i += 100_000) await w.write(up.subarray(i, i + 100_000));
      await w.close(); // half-close: the target sees end-of-stream, we go on reading
      const got = await readAll(ch.readable.getReader(), down.byteLength);
      assert.ok(received, "the target saw no connection");
      assert.deepEqual(await received, up);
      assert.equal(got.byteLength, down.byteLength);
      assert.deepEqual(got, down);
      assert.equal((await ch.closed).kind, "closed");
      c.close();
    });
  }
  it("the target half-closes first: we still write, and it receives everything", async () => {
    const hello = new TextEncoder().encode("hello, then FIN");
    const up = pattern(512 * 1024, 3);
    let received: Promise<Uint8Array> | undefined;
    const port = await target((s) => {
      s.end(hello);
      received = new Promise((resolve) => {
        const parts: Buffer[] = [];
        s.on("data", (d: Buffer) => parts.push(d));
        s.on("end", () => resolve(new Uint8Array(Buffer.concat(parts))));
      });
    });
    const c = await connect(options(server));
    const ch = await c.openDirectTcpip({ host: "127.0.0.1", port });
    assert.deepEqual(await readAll(ch.readable.getReader(), 1024), hello);
    const w = ch.writable.getWriter();
    await w.write(up);
    await w.close();
    assert.deepEqual(await received, up);
    assert.equal((await ch.closed).kind, "closed");
    c.close();
  });
  it("the peer identity is the host key's SHA256 fingerprint; a pinned fingerprint works", async () => {
    const c = await connect(options(server));
    assert.equal(c.peer.scheme, "ssh-host-key");
    assert.equal(c.peer.id, server.fingerprint());
    c.close();
    const d = await connect(
      options(server, { hostKeys: { fingerprints: [server.fingerprint()] } }),
    );
    d.close();
  });
  it("a wrong host key -> PeerVerificationError host-key-mismatch, nothing signed", async () => {
    const k = await parseOpenSshPrivateKey(server.clientKey);
    let signed = 0;
    const spy: SshPrivateKey = {
      ...k,
      sign: (d, a) => {
        signed++;
        return k.sign(d, a);
      },
    };
    await assert.rejects(
      SshConnection.connect(
        options(server, {
          privateKey: spy,
          hostKeys: { knownHosts: `[127.0.0.1]:${server.port} ${strangerHostKeyLine()}\n` },
        }),
      ),
      (e) => {
        assert.ok(e instanceof PeerVerificationError, `got ${e}`);
        assert.equal(e.reason, "host-key-mismatch");
        return true;
      },
    );
    assert.equal(signed, 0);
  });
  it("an unknown client key -> AUTH_FAILED", async () => {
    await assert.rejects(
      SshConnection.connect(options(server, { privateKey: server.strangerKey })),
      (e) => {
        assert.equal(code(e), "AUTH_FAILED", `got ${e}`);
        return true;
      },
    );
  });
  it("a wrong user name -> AUTH_FAILED", async () => {
    await assert.rejects(
      SshConnection.connect(options(server, { username: `not-${server.user}` })),
      (e) => code(e) === "AUTH_FAILED",
    );
  });
  it("a refused target fails only that dial (DIAL_FAILED); a live channel goes on", async () => {
    const echo = await target((s) => s.pipe(s));
    const dead = await freePort();
    const c = await connect(options(server));
    const ok = await c.openDirectTcpip({ host: "127.0.0.1", port: echo });
    const w = ok.writable.getWriter();
    const data = pattern(100_000, 5);
    await w.write(data);
    await assert.rejects(c.openDirectTcpip({ host: "127.0.0.1", port: dead }), (e) => {
      assert.equal(code(e), "DIAL_FAILED", `got ${e}`);
      return true;
    });
    await assert.rejects(
      c.openDirectTcpip({ host: "192.0.2.1", port: 80 }),
      (e) => code(e) === "DIAL_FAILED",
    );
    await w.close();
    assert.deepEqual(await readAll(ok.readable.getReader(), data.byteLength), data);
    assert.ok(c.alive);
    c.close();
  });
  it("keepalive@openssh.com gets an answer; 20 channels share one connection", async () => {
    const echo = await target((s) => s.pipe(s));
    const c = await connect(options(server));
    await c.ping();
    const chans = await Promise.all(
      Array.from({ length: 20 }, () => c.openDirectTcpip({ host: "127.0.0.1", port: echo })),
    );
    const results = await Promise.all(
      chans.map(async (ch, i) => {
        const data = pattern(64 * 1024, i + 1);
        const w = ch.writable.getWriter();
        const reading = readAll(ch.readable.getReader(), data.byteLength);
        await w.write(data);
        await w.close();
        assert.deepEqual(await reading, data);
        return (await ch.closed).kind;
      }),
    );
    assert.deepEqual(
      results,
      chans.map(() => "closed"),
    );
    c.close();
  });
  it("stop() closes every connection and target socket", async () => {
    const s = await startSsh2Server();
    const echo = await target((x) => x.pipe(x));
    const c = await SshConnection.connect(options(s));
    const ch = await c.openDirectTcpip({ host: "127.0.0.1", port: echo });
    assert.equal(s.targetCount(), 1);
    await s.stop();
    const info = await c.closed;
    assert.ok(info !== undefined);
    assert.notEqual((await ch.closed).kind, "closed");
    assert.equal(s.targetCount(), 0);
    assert.equal(s.connectionCount(), 0);
  });
});
