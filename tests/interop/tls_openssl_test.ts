import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  type Channel,
  MalformedInputError,
  PeerVerificationError,
  SpokewireError,
} from "../../mod.ts";
import { type Issued, makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { readAll, writeAll } from "../../src/testing/mod.ts";
import { listenTls, TlsDialer, type TlsDialerOptions } from "../../src/tls/mod.ts";
import { type OpensslProcess, startOpenssl, startSServer } from "../_harness/tls_openssl.ts";

const pki = makeTestPki();
const procs = new Set<OpensslProcess>();
after(async () => {
  for (const p of procs) {
    p.stop();
    await p.exited;
  }
  pki.cleanup();
});

const enc = new TextEncoder();
const dec = new TextDecoder();

async function sServer(server: Issued, extra: string[]) {
  const s = await startSServer([
    "-cert",
    server.certPath,
    "-key",
    server.keyPath,
    "-CAfile",
    pki.caPath,
    "-rev",
    ...extra,
  ]);
  procs.add(s);
  return s;
}

function dialer(client?: Issued, more: Partial<TlsDialerOptions> = {}): TlsDialer {
  return new TlsDialer({
    credentials: client
      ? { ca: pki.ca.cert, cert: client.cert, key: client.key }
      : { ca: pki.ca.cert },
    ...more,
  });
}

function reason(r: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof PeerVerificationError, `expected PeerVerificationError, got ${e}`);
    assert.equal(e.reason, r, `reason of ${e.message}`);
    return true;
  };
}

/**
 * The error a refused dial ends in: at the dial itself, or (where the runtime cannot
 * know the server's verdict by then: Deno, or a zero refusal window) at the first
 * write or read. A clean end of stream or data instead is a failure.
 */
async function refusal(dialing: Promise<Channel>): Promise<unknown> {
  let ch: Channel;
  try {
    ch = await dialing;
  } catch (e) {
    return e;
  }
  try {
    const w = ch.writable.getWriter();
    await w.write(enc.encode("x\n"));
    const { done } = await ch.readable.getReader().read();
    ch.abort();
    return new Error(`not refused: the first read gave ${done ? "end of stream" : "data"}`);
  } catch (e) {
    return e;
  }
}

async function revRoundTrip(ch: Channel): Promise<void> {
  const w = ch.writable.getWriter();
  await w.write(enc.encode("spokewire\n"));
  w.releaseLock();
  const r = ch.readable.getReader();
  let got = "";
  for (let i = 0; i < 100 && !got.includes("eriwekops"); i++) {
    const x = await r.read();
    if (x.done) break;
    got += dec.decode(x.value);
  }
  r.releaseLock();
  assert.match(got, /eriwekops/);
}

describe("TLS interop: our dialer against openssl s_server", () => {
  for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
    const flag = version === "TLSv1.3" ? "-tls1_3" : "-tls1_2";
    const minVersion = version;
    it(`${version}: mutual TLS verifies both ways and carries data`, async () => {
      const s = await sServer(pki.server, ["-Verify", "1", flag]);
      const ch = await dialer(pki.client, { minVersion }).dial({
        host: "127.0.0.1",
        port: s.port,
        name: "localhost",
      });
      assert.equal(ch.peer.scheme, "x509");
      assert.equal(ch.peer.details?.protocol, version);
      assert.equal(ch.peer.id, "system:node:node-1");
      assert.deepEqual(ch.peer.groups, ["system:nodes"]);
      assert.match(ch.peer.fingerprint, /^[0-9a-f]{64}$/);
      await revRoundTrip(ch);
      ch.abort();
      s.stop();
    });

    it(`${version}: a client certificate from a foreign CA is refused (client-cert-refused)`, async () => {
      const s = await sServer(pki.server, ["-Verify", "1", "-verify_return_error", flag]);
      const err = await refusal(
        dialer(pki.foreignClient, { minVersion }).dial({
          host: "127.0.0.1",
          port: s.port,
          name: "localhost",
        }),
      );
      reason("client-cert-refused")(err);
      s.stop();
    });

    it(`${version}: no client certificate where one is required (client-cert-missing)`, async () => {
      const s = await sServer(pki.server, ["-Verify", "1", "-verify_return_error", flag]);
      const err = await refusal(
        dialer(undefined, { minVersion }).dial({
          host: "127.0.0.1",
          port: s.port,
          name: "localhost",
        }),
      );
      reason("client-cert-missing")(err);
      s.stop();
    });
  }

  it("a TLS 1.2-only server is refused by a default (TLS 1.3) dialer", async () => {
    const s = await sServer(pki.server, ["-tls1_2"]);
    await assert.rejects(
      dialer(pki.client).dial({ host: "127.0.0.1", port: s.port, name: "localhost" }),
      (e) => {
        assert.ok(e instanceof SpokewireError && e.code === "DIAL_FAILED", `got ${e}`);
        return true;
      },
    );
    s.stop();
  });

  it("without client certificates: server-only TLS works", async () => {
    const s = await sServer(pki.server, ["-tls1_3"]);
    const ch = await dialer().dial({ host: "127.0.0.1", port: s.port, name: "127.0.0.1" });
    assert.equal(ch.peer.id, "system:node:node-1");
    await revRoundTrip(ch);
    ch.abort();
    s.stop();
  });

  it("wrong CA: a server certificate from a foreign CA fails with untrusted-root", async () => {
    const s = await sServer(pki.foreignServer, []);
    await assert.rejects(
      dialer(pki.client).dial({ host: "127.0.0.1", port: s.port, name: "localhost" }),
      reason("untrusted-root"),
    );
    s.stop();
  });

  it("an expired server certificate fails with expired", async () => {
    const s = await sServer(pki.expiredServer, []);
    await assert.rejects(
      dialer(pki.client).dial({ host: "127.0.0.1", port: s.port, name: "localhost" }),
      reason("expired"),
    );
    s.stop();
  });

  // spokewire's verifier gives these verdicts. Not yet under Deno: its TLS layer (rustls)
  // cannot complete a handshake with such a certificate whatever the options, and
  // fails it as DIAL_FAILED UNABLE_TO_VERIFY_LEAF_SIGNATURE / SELF_SIGNED_CERT_IN_CHAIN
  // (issue 24, open).
  const denoRefusesFirst =
    "Deno" in globalThis &&
    "Deno's TLS layer refuses this certificate inside the handshake (issue 24, open)";
  for (const [what, which, why, extra] of [
    ["an unknown critical extension", "criticalExtServer", "unknown-critical-extension", []],
    // s_server itself refuses so small a key at Debian's default security level.
    ["an RSA-1024 key", "weakKeyServer", "weak-key", ["-cipher", "DEFAULT:@SECLEVEL=0"]],
  ] as const) {
    it(`a server certificate with ${what} fails with ${why}`, {
      skip: denoRefusesFirst,
    }, async () => {
      const s = await sServer(pki[which], [...extra]);
      await assert.rejects(
        dialer(pki.client).dial({ host: "127.0.0.1", port: s.port, name: "localhost" }),
        reason(why),
      );
      s.stop();
    });
  }

  it("a server certificate for another name fails with name-mismatch", async () => {
    const s = await sServer(pki.wrongSanServer, []);
    await assert.rejects(
      dialer(pki.client).dial({ host: "127.0.0.1", port: s.port, name: "localhost" }),
      reason("name-mismatch"),
    );
    s.stop();
  });

  it("a CN-only certificate (no SAN) fails with name-mismatch: no CN fallback", async () => {
    const s = await sServer(pki.cnOnlyServer, []);
    await assert.rejects(
      dialer(pki.client).dial({ host: "127.0.0.1", port: s.port, name: "localhost" }),
      reason("name-mismatch"),
    );
    s.stop();
  });

  it("a chain through an intermediate verifies, and the identity lists the chain", async () => {
    const s = await sServer(pki.serverViaInter, ["-cert_chain", pki.inter.certPath]);
    const ch = await dialer(pki.client).dial({
      host: "127.0.0.1",
      port: s.port,
      name: "node-1.example",
    });
    const chain = ch.peer.details?.chain as unknown[];
    assert.ok(chain.length >= 2, `chain of ${chain.length}`);
    ch.abort();
    s.stop();
  });
});

describe("TLS interop: how the dialer learns that s_server accepted its certificate", () => {
  // A window this long would blow the test timeout: a pass means it was not waited out,
  // in both runtimes (Node reports the ticket; under Deno the dialer sees the ticket's
  // record arrive below TLS).
  const long = { refusalWindowMs: 60_000 };

  it("TLS 1.3 s_server sends session tickets once it accepted us: the dial resolves on the first", {
    timeout: 20_000,
  }, async () => {
    const s = await sServer(pki.server, ["-Verify", "1", "-verify_return_error", "-tls1_3"]);
    const ch = await dialer(pki.client, long).dial({
      host: "127.0.0.1",
      port: s.port,
      name: "localhost",
    });
    await revRoundTrip(ch);
    ch.abort();
    s.stop();
  });

  it("-no_ticket still sends (stateful) tickets in TLS 1.3: the dial resolves on the first", {
    timeout: 20_000,
  }, async () => {
    const s = await sServer(pki.server, [
      "-Verify",
      "1",
      "-verify_return_error",
      "-tls1_3",
      "-no_ticket",
    ]);
    const ch = await dialer(pki.client, long).dial({
      host: "127.0.0.1",
      port: s.port,
      name: "localhost",
    });
    ch.abort();
    s.stop();
  });

  it("-num_tickets 0 sends none: the refusal window is the fallback, and the dial succeeds", async () => {
    const s = await sServer(pki.server, [
      "-Verify",
      "1",
      "-verify_return_error",
      "-tls1_3",
      "-num_tickets",
      "0",
    ]);
    const ch = await dialer(pki.client, { refusalWindowMs: 50 }).dial({
      host: "127.0.0.1",
      port: s.port,
      name: "localhost",
    });
    await revRoundTrip(ch);
    ch.abort();
    s.stop();
  });

  it("a refusal (alert) ends the wait at once even with a long window", {
    timeout: 20_000,
  }, async () => {
    const s = await sServer(pki.server, ["-Verify", "1", "-verify_return_error", "-tls1_3"]);
    await assert.rejects(
      dialer(pki.foreignClient, long).dial({ host: "127.0.0.1", port: s.port, name: "localhost" }),
      reason("client-cert-refused"),
    );
    s.stop();
  });

  for (const tickets of ["2", "0"]) {
    it(`with no wait at all (refusalWindowMs 0), a refusal fails the first write or read (-num_tickets ${tickets})`, {
      timeout: 20_000,
    }, async () => {
      const s = await sServer(pki.server, [
        "-Verify",
        "1",
        "-verify_return_error",
        "-tls1_3",
        "-num_tickets",
        tickets,
      ]);
      const t0 = performance.now();
      const err = await refusal(
        dialer(pki.foreignClient, { refusalWindowMs: 0 }).dial({
          host: "127.0.0.1",
          port: s.port,
          name: "localhost",
        }),
      );
      reason("client-cert-refused")(err);
      // No fixed wait: the outcome came from the protocol, long before any timeout.
      assert.ok(performance.now() - t0 < 5_000);
      s.stop();
    });
  }

  it("with no wait at all, an accepting -num_tickets 0 server gives a working channel", async () => {
    const s = await sServer(pki.server, [
      "-Verify",
      "1",
      "-verify_return_error",
      "-tls1_3",
      "-num_tickets",
      "0",
    ]);
    const ch = await dialer(pki.client, { refusalWindowMs: 0 }).dial({
      host: "127.0.0.1",
      port: s.port,
      name: "localhost",
    });
    await revRoundTrip(ch);
    ch.abort();
    s.stop();
  });
});

describe("TLS interop: openssl s_client against our listener", () => {
  async function withListener(
    client: Issued | undefined,
    sClientExtra: string[],
  ): Promise<{ refused: SpokewireError[]; accepted: Channel | undefined; client: OpensslProcess }> {
    const refused: SpokewireError[] = [];
    let onRefused: (() => void) | undefined;
    const l = await listenTls(
      { port: 0 },
      {
        credentials: { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key },
        handshakeTimeoutMs: 3_000,
        onRefused: (e) => {
          refused.push(e);
          onRefused?.();
        },
      },
    );
    const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
    const args = [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-CAfile",
      pki.caPath,
      "-servername",
      "localhost",
    ];
    if (client) args.push("-cert", client.certPath, "-key", client.keyPath);
    const c = startOpenssl([...args, ...sClientExtra]);
    procs.add(c);
    const iter = l[Symbol.asyncIterator]();
    const outcome = await Promise.race([
      iter.next().then((r) => r.value as Channel),
      new Promise<undefined>((r) => {
        onRefused = () => r(undefined);
      }),
    ]);
    await l.close();
    return { refused, accepted: outcome, client: c };
  }

  it("a client with a certificate from our CA is accepted with its identity", async () => {
    const { accepted, client } = await withListener(pki.client, ["-verify_return_error"]);
    assert.ok(accepted);
    assert.equal(accepted.peer.id, "system:node:node-1");
    assert.deepEqual(accepted.peer.groups, ["system:nodes"]);
    client.child.stdin?.write("ping\n");
    const r = accepted.readable.getReader();
    const first = await r.read();
    assert.equal(dec.decode(first.value), "ping\n");
    r.releaseLock();
    await writeAll(accepted, [enc.encode("pong from spokewire\n")]);
    await client.waitFor(/pong from spokewire/);
    client.stop();
    accepted.abort();
  });

  it("a client without a certificate is refused: client-cert-missing", async () => {
    const { accepted, refused, client } = await withListener(undefined, []);
    assert.equal(accepted, undefined);
    assert.ok(refused[0] instanceof PeerVerificationError, `got ${refused[0]}`);
    assert.equal((refused[0] as PeerVerificationError).reason, "client-cert-missing");
    client.stop();
  });

  it("a client certificate from a foreign CA is refused: untrusted-root", async () => {
    const { accepted, refused, client } = await withListener(pki.foreignClient, []);
    assert.equal(accepted, undefined);
    assert.ok(refused[0] instanceof PeerVerificationError, `got ${refused[0]}`);
    assert.equal((refused[0] as PeerVerificationError).reason, "untrusted-root");
    client.stop();
  });

  it("an expired client certificate is refused: expired", async () => {
    const { accepted, refused, client } = await withListener(pki.expiredClient, []);
    assert.equal(accepted, undefined);
    assert.ok(refused[0] instanceof PeerVerificationError, `got ${refused[0]}`);
    assert.equal((refused[0] as PeerVerificationError).reason, "expired");
    client.stop();
  });

  it("s_client trusting another CA aborts the handshake; nothing is yielded", async () => {
    const { accepted, refused, client } = await withListener(pki.client, [
      "-verify_return_error",
      "-CAfile",
      pki.foreignCa.certPath,
    ]);
    assert.equal(accepted, undefined);
    assert.ok(refused.length > 0);
    await client.waitFor(/verify error|unable to get local issuer/i);
    client.stop();
  });

  it("readAll works over an s_client session that half-closes", async () => {
    const { accepted, client } = await withListener(pki.client, []);
    assert.ok(accepted);
    client.child.stdin?.end("bye\n");
    // s_client sends close_notify at stdin EOF only with -ign_eof off; read what arrives.
    const r = accepted.readable.getReader();
    const x = await r.read();
    assert.equal(dec.decode(x.value), "bye\n");
    r.releaseLock();
    client.stop();
    accepted.abort();
    void readAll;
  });
});

describe("TLS interop: credentials checked when given, against openssl peers", () => {
  /** A PEM block whose armour is fine and whose content is not DER. */
  const GARBAGE = (label: string): string =>
    `-----BEGIN ${label}-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END ${label}-----\n`;

  function malformed(field: RegExp) {
    return (e: unknown): boolean => {
      assert.ok(e instanceof MalformedInputError, `expected MalformedInputError, got ${e}`);
      assert.match(e.message, field);
      return true;
    };
  }

  it("a CA bundle, certificate or key that does not parse is refused, naming the field", async () => {
    const c = pki.client;
    assert.throws(
      () => new TlsDialer({ credentials: { ca: [pki.ca.cert, GARBAGE("CERTIFICATE")] } }),
      malformed(/credentials\.ca\[1\]/),
    );
    assert.throws(
      () => new TlsDialer({ credentials: { ca: pki.ca.cert + GARBAGE("CERTIFICATE") } }),
      malformed(/credentials\.ca\[0\]/),
    );
    assert.throws(
      () =>
        new TlsDialer({
          credentials: { ca: pki.ca.cert, cert: GARBAGE("CERTIFICATE"), key: c.key },
        }),
      malformed(/credentials\.cert/),
    );
    assert.throws(
      () =>
        new TlsDialer({
          credentials: { ca: pki.ca.cert, cert: c.cert, key: GARBAGE("PRIVATE KEY") },
        }),
      malformed(/credentials\.key/),
    );
    await assert.rejects(
      listenTls(
        { host: "127.0.0.1", port: 0 },
        { credentials: { ca: GARBAGE("CERTIFICATE"), cert: pki.server.cert, key: pki.server.key } },
      ),
      malformed(/credentials\.ca\[0\]/),
    );
  });

  it("a listener keeps its material after a rejected update: s_client is still accepted", async () => {
    const l = await listenTls(
      { host: "127.0.0.1", port: 0 },
      { credentials: { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key } },
    );
    try {
      // The other server's key does not match this certificate; a garbage key does not parse.
      assert.throws(
        () => l.updateCredentials({ ca: pki.ca.cert, cert: pki.server.cert, key: pki.server2.key }),
        malformed(/credentials\.key does not match credentials\.cert/),
      );
      assert.throws(
        () =>
          l.updateCredentials({
            ca: pki.ca.cert,
            cert: pki.server.cert,
            key: GARBAGE("PRIVATE KEY"),
          }),
        malformed(/credentials\.key/),
      );
      const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
      const client = startOpenssl([
        "s_client",
        "-connect",
        `127.0.0.1:${port}`,
        "-CAfile",
        pki.caPath,
        "-servername",
        "localhost",
        "-verify_return_error",
        "-cert",
        pki.client.certPath,
        "-key",
        pki.client.keyPath,
      ]);
      procs.add(client);
      const accepted = (await l[Symbol.asyncIterator]().next()).value as Channel;
      assert.equal(accepted.peer.id, "system:node:node-1");
      await writeAll(accepted, [enc.encode("kept the old material\n")]);
      await client.waitFor(/kept the old material/);
      await client.waitFor(/Verify return code: 0 \(ok\)/);
      client.stop();
      accepted.abort();
    } finally {
      await l.close();
    }
  });

  it("a dialer keeps its material after a rejected update: s_server still accepts it", async () => {
    const s = await sServer(pki.server, ["-Verify", "1", "-verify_return_error"]);
    const d = dialer(pki.client);
    assert.throws(
      () => d.updateCredentials({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.server.key }),
      malformed(/credentials\.key does not match credentials\.cert/),
    );
    assert.throws(
      () =>
        d.updateCredentials({
          ca: GARBAGE("CERTIFICATE"),
          cert: pki.client.cert,
          key: pki.client.key,
        }),
      malformed(/credentials\.ca\[0\]/),
    );
    const ch = await d.dial({ host: "127.0.0.1", port: s.port, name: "localhost" });
    await revRoundTrip(ch);
    ch.abort();
    s.stop();
  });
});

describe("TLS interop: a listener never resumes a session (openssl s_client -sess_out / -sess_in)", () => {
  interface Watched {
    readonly port: number;
    readonly refused: SpokewireError[];
    readonly accepted: Channel[];
    close(): Promise<void>;
  }

  async function watchedListener(ca: Issued, server: Issued): Promise<Watched> {
    const refused: SpokewireError[] = [];
    const accepted: Channel[] = [];
    const l = await listenTls(
      { host: "127.0.0.1", port: 0 },
      {
        credentials: { ca: ca.cert, cert: server.cert, key: server.key },
        handshakeTimeoutMs: 3_000,
        onRefused: (e) => refused.push(e),
      },
    );
    const draining = (async () => {
      for await (const ch of l) {
        accepted.push(ch);
        await writeAll(ch, [enc.encode(`hello ${ch.peer.id}\n`)]).catch(() => {});
      }
    })();
    return {
      port: Number(l.addr.slice(l.addr.lastIndexOf(":") + 1)),
      refused,
      accepted,
      async close() {
        await l.close();
        await draining;
        for (const ch of accepted) ch.abort();
      },
    };
  }

  function sClient(port: number, caPath: string, client: Issued | undefined, extra: string[]) {
    const args = ["s_client", "-connect", `127.0.0.1:${port}`, "-CAfile", caPath];
    args.push("-servername", "localhost", "-tls1_3");
    if (client) args.push("-cert", client.certPath, "-key", client.keyPath);
    const c = startOpenssl([...args, ...extra]);
    procs.add(c);
    return c;
  }

  /** A session file from a first, accepted connection (the ticket came after acceptance). */
  async function firstSession(l: Watched): Promise<string> {
    const file = join(pki.dir, `session-${l.port}.pem`);
    const c = sClient(l.port, pki.caPath, pki.client, ["-sess_out", file]);
    await c.waitFor(/hello system:node:node-1/);
    for (
      let i = 0;
      i < 100 && !(existsSync(file) && readFileSync(file, "utf8").includes("SSL SESSION"));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(readFileSync(file, "utf8"), /BEGIN SSL SESSION PARAMETERS/);
    c.stop();
    await c.exited;
    return file;
  }

  /** Wait (bounded) until the listener yielded or refused `n` connections in all. */
  async function outcomes(l: Watched, n: number): Promise<void> {
    for (let i = 0; i < 250 && l.accepted.length + l.refused.length < n; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(l.accepted.length + l.refused.length, n, "the listener decided every connection");
  }

  /** The listener yielded `accepted` channels in all and refused the next for one of `reasons`. */
  function refusedAs(l: Watched, accepted: number, reasons: readonly string[]): void {
    assert.equal(
      l.accepted.length,
      accepted,
      "a connection without its own certificate became a channel",
    );
    const e = l.refused[0];
    assert.ok(e instanceof PeerVerificationError, `got ${e}`);
    assert.ok(reasons.includes(e.reason), e.reason);
  }

  it("the same listener: a resumed session is never a channel; a full handshake is", async () => {
    const l = await watchedListener(pki.ca, pki.server);
    try {
      const file = await firstSession(l);
      assert.equal(l.accepted.length, 1);
      const again = sClient(l.port, pki.caPath, pki.client, ["-sess_in", file]);
      await outcomes(l, 2);
      const out = await again.waitFor(/\b(Reused|New),/);
      if (out[1] === "Reused") {
        // The TLS layer resumed (Deno's node:tls does whatever the options say): refused.
        assert.equal(l.accepted.length, 1, "a resumed session must not become a channel");
        assert.ok(l.refused[0] instanceof PeerVerificationError, `got ${l.refused[0]}`);
        assert.equal((l.refused[0] as PeerVerificationError).reason, "session-resumed");
      } else {
        // A full handshake (Node: no tickets to resume from): the client presented its certificate.
        assert.equal(l.accepted.length, 2);
        assert.equal(l.accepted[1].peer.id, "system:node:node-1");
        await again.waitFor(/hello system:node:node-1/);
      }
      again.stop();
    } finally {
      await l.close();
    }
  });

  it("resuming without a certificate is refused (client-cert-missing or session-resumed)", async () => {
    const l = await watchedListener(pki.ca, pki.server);
    try {
      const file = await firstSession(l);
      const again = sClient(l.port, pki.caPath, undefined, ["-sess_in", file]);
      await outcomes(l, 2);
      refusedAs(l, 1, ["client-cert-missing", "session-resumed"]);
      again.stop();
    } finally {
      await l.close();
    }
  });

  it("a session from a listener trusting CA-A is refused by one trusting only CA-B, in one process", async () => {
    const a = await watchedListener(pki.ca, pki.server);
    const b = await watchedListener(pki.foreignCa, pki.foreignServer);
    try {
      const file = await firstSession(a);
      // Trust B's server so that only the listener's verdict decides.
      const c = sClient(b.port, pki.foreignCa.certPath, pki.client, ["-sess_in", file]);
      await outcomes(b, 1);
      refusedAs(b, 0, ["untrusted-root", "session-resumed"]);
      c.stop();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
