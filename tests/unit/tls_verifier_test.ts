/**
 * One verifier for a TLS peer, in both runtimes: `verifyChain` decides (a CA with the
 * same subject name as ours is `untrusted-root` on both sides, not `malformed`), the
 * expected name is matched by the rules of `pki/names.ts` (no leading-zero IPv4, no
 * IPv4-mapped IPv6 standing for IPv4), and the identity comes from the verified chain,
 * its details parsed when read.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import {
  type Channel,
  certificateToPem,
  createRootCa,
  exportPrivateKeyPem,
  issueCredential,
  listenTls,
  PeerVerificationError,
  type SpokewireError,
  TlsDialer,
  type TlsListener,
} from "../../mod.ts";

interface Pem {
  cert: string;
  key: string;
}

let ca: string;
let server: Pem;
let client: Pem;
/** From a second CA whose subject is the same as the first's (every kubeadm CA is CN=kubernetes). */
let foreignServer: Pem;
let foreignClient: Pem;
const listeners: TlsListener[] = [];

async function pem(issued: {
  certificate: Parameters<typeof certificateToPem>[0];
  privateKey: CryptoKey;
}): Promise<Pem> {
  return {
    cert: certificateToPem(issued.certificate),
    key: await exportPrivateKeyPem(issued.privateKey),
  };
}

before(async () => {
  const root = await createRootCa({ commonName: "kubernetes" });
  const twin = await createRootCa({ commonName: "kubernetes" });
  ca = certificateToPem(root.certificate);
  const serverOpts = { profile: "server", dnsNames: ["localhost"], ips: ["127.0.0.1"] } as const;
  const clientOpts = {
    profile: "client",
    commonName: "system:node:node-1",
    organizations: ["system:nodes"],
  } as const;
  server = await pem(await issueCredential(root, serverOpts));
  client = await pem(await issueCredential(root, clientOpts));
  foreignServer = await pem(await issueCredential(twin, serverOpts));
  foreignClient = await pem(await issueCredential(twin, clientOpts));
});
after(async () => {
  for (const l of listeners) await l.close();
});

async function listen(
  creds: Pem,
  refused: SpokewireError[] = [],
): Promise<{ port: number; accepted: Channel[] }> {
  const accepted: Channel[] = [];
  const l = await listenTls(
    { host: "127.0.0.1", port: 0 },
    { credentials: { ca, ...creds }, onRefused: (e) => refused.push(e) },
  );
  listeners.push(l);
  void (async () => {
    for await (const ch of l) {
      accepted.push(ch);
      ch.readable.pipeTo(ch.writable).catch(() => {});
    }
  })();
  return { port: Number(l.addr.slice(l.addr.lastIndexOf(":") + 1)), accepted };
}

function reason(r: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof PeerVerificationError, `expected PeerVerificationError, got ${e}`);
    assert.equal(e.reason, r, e.message);
    return true;
  };
}

/** Bounded wait until `cond()` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 250 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cond(), what);
}

describe("TLS: one verifier, the same verdicts in Node and Deno", () => {
  it("a server certificate from a same-name foreign CA is untrusted-root", async () => {
    const { port } = await listen(foreignServer);
    const dialer = new TlsDialer({ credentials: { ca, ...client } });
    await assert.rejects(
      dialer.dial({ host: "127.0.0.1", port, name: "localhost" }),
      reason("untrusted-root"),
    );
  });

  it("a client certificate from a same-name foreign CA is refused as untrusted-root", async () => {
    const refused: SpokewireError[] = [];
    const { port, accepted } = await listen(server, refused);
    const dialer = new TlsDialer({ credentials: { ca, ...foreignClient } });
    await assert.rejects(
      dialer.dial({ host: "127.0.0.1", port, name: "localhost" }),
      reason("client-cert-refused"),
    );
    await until(() => refused.length > 0, "the listener reported its refusal");
    reason("untrusted-root")(refused[0]);
    assert.equal(accepted.length, 0);
  });

  for (const name of ["010.0.0.1", "::ffff:127.0.0.1", "127.000.000.001", "127.0.0.1."]) {
    it(`the expected name ${JSON.stringify(name)} does not match the IP SAN 127.0.0.1`, async () => {
      const { port } = await listen(server);
      const dialer = new TlsDialer({ credentials: { ca, ...client } });
      await assert.rejects(dialer.dial({ host: "127.0.0.1", port, name }), reason("name-mismatch"));
    });
  }

  it("the IP SAN matches its address, and the identity comes from the verified chain", async () => {
    const { port, accepted } = await listen(server);
    const dialer = new TlsDialer({ credentials: { ca, ...client } });
    const ch = await dialer.dial({ host: "127.0.0.1", port, name: "127.0.0.1" });
    assert.equal(ch.peer.scheme, "x509");
    assert.match(ch.peer.fingerprint, /^[0-9a-f]{64}$/);
    const d = ch.peer.details ?? {};
    assert.equal(typeof d.subject, "string");
    assert.match(String(d.issuer), /CN=kubernetes/);
    assert.equal((d.chain as unknown[]).length, 2, "leaf and the trust anchor");
    assert.deepEqual((d.sans as { ip: string[] }).ip, ["127.0.0.1"]);
    assert.equal(d.protocol, "TLSv1.3");
    // Details read lazily still serialize like plain data.
    const json = JSON.parse(JSON.stringify(ch.peer)) as { details: { notAfter: string } };
    assert.ok(!Number.isNaN(Date.parse(json.details.notAfter)));
    await until(() => accepted.length === 1, "the listener yielded the client");
    assert.equal(accepted[0].peer.id, "system:node:node-1");
    assert.deepEqual(accepted[0].peer.groups, ["system:nodes"]);
    ch.abort();
  });
});

describe("TLS: a client that hangs up mid-handshake frees its listener slot at once", () => {
  it("20 clients closing right after their last flight are each decided long before the handshake timeout", async () => {
    const refused: SpokewireError[] = [];
    const accepted: Channel[] = [];
    const l = await listenTls(
      { host: "127.0.0.1", port: 0 },
      {
        credentials: { ca, ...server },
        handshakeTimeoutMs: 60_000,
        onRefused: (e) => refused.push(e),
      },
    );
    listeners.push(l);
    void (async () => {
      for await (const ch of l) {
        accepted.push(ch);
        ch.abort();
      }
    })();
    const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = tlsConnect(
          {
            host: "127.0.0.1",
            port,
            servername: "localhost",
            ca,
            cert: client.cert,
            key: client.key,
          },
          () => {
            s.destroy();
            resolve();
          },
        );
        s.on("error", reject);
      });
    }
    // Under Node the server never sees the client's last flight (refused at once: the
    // socket ended mid-handshake); under Deno it does (yielded, then ended). Before, Node
    // held each socket until the handshake timeout.
    await until(
      () => refused.length + accepted.length === 20,
      "every connection decided within 5 s",
    );
  });
});
