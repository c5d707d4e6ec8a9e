/**
 * TLS credentials are checked when they are given, the same way in Node and Deno: a key
 * that does not parse, a key that does not match its certificate, or a CA that does not
 * parse is a MalformedInputError naming the field, and a rejected update leaves the old
 * material in force.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type Channel,
  certificateToPem,
  createRootCa,
  exportPrivateKeyPem,
  issueCredential,
  listenTls,
  MalformedInputError,
  type TlsCredentials,
  TlsDialer,
  type TlsListener,
} from "../../mod.ts";

let ca: string;
let server: { cert: string; key: string };
let client: { cert: string; key: string };
let otherKey: string;
const listeners: TlsListener[] = [];

before(async () => {
  const root = await createRootCa({ commonName: "credentials test root" });
  ca = certificateToPem(root.certificate);
  const s = await issueCredential(root, { profile: "server", dnsNames: ["localhost"] });
  const c = await issueCredential(root, { profile: "client", commonName: "system:node:n1" });
  const o = await issueCredential(root, { profile: "client", commonName: "other" });
  server = { cert: certificateToPem(s.certificate), key: await exportPrivateKeyPem(s.privateKey) };
  client = { cert: certificateToPem(c.certificate), key: await exportPrivateKeyPem(c.privateKey) };
  otherKey = await exportPrivateKeyPem(o.privateKey);
});
after(async () => {
  for (const l of listeners) await l.close();
});

/** A PEM block whose armour is fine and whose content is not a key. */
const GARBAGE_KEY =
  "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END PRIVATE KEY-----\n";

function malformed(field: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof MalformedInputError, `expected MalformedInputError, got ${e}`);
    assert.equal(e.code, "MALFORMED_INPUT");
    assert.match(e.message, field);
    return true;
  };
}

function portOf(l: TlsListener): number {
  return Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
}

async function listen(credentials: TlsCredentials): Promise<TlsListener> {
  const l = await listenTls({ host: "127.0.0.1", port: 0 }, { credentials });
  listeners.push(l);
  void (async () => {
    for await (const ch of l) ch.readable.pipeTo(ch.writable).catch(() => {});
  })();
  return l;
}

async function echoOnce(ch: Channel): Promise<void> {
  const w = ch.writable.getWriter();
  await w.write(new Uint8Array([7]));
  const r = ch.readable.getReader();
  const { value } = await r.read();
  assert.deepEqual([...(value ?? [])], [7]);
  ch.abort();
}

describe("TLS credentials are checked when given, in both runtimes", () => {
  it("a dialer refuses a key that does not parse", () => {
    assert.throws(
      () => new TlsDialer({ credentials: { ca, cert: client.cert, key: GARBAGE_KEY } }),
      malformed(/credentials\.key does not parse/),
    );
  });

  it("a dialer refuses a key that does not match its certificate", () => {
    assert.throws(
      () => new TlsDialer({ credentials: { ca, cert: client.cert, key: otherKey } }),
      malformed(/credentials\.key does not match credentials\.cert/),
    );
  });

  it("a listener refuses a key that does not match its certificate", async () => {
    await assert.rejects(
      listenTls({ host: "127.0.0.1", port: 0 }, { credentials: { ca, ...server, key: otherKey } }),
      malformed(/credentials\.key does not match credentials\.cert/),
    );
  });

  it("a rejected listener update keeps the old material: the next dial still succeeds", async () => {
    const l = await listen({ ca, ...server });
    assert.throws(
      () => l.updateCredentials({ ca, cert: server.cert, key: otherKey }),
      malformed(/does not match/),
    );
    assert.throws(
      () => l.updateCredentials({ ca, cert: server.cert, key: GARBAGE_KEY }),
      malformed(/does not parse/),
    );
    const dialer = new TlsDialer({ credentials: { ca, ...client } });
    const ch = await dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "localhost" });
    await echoOnce(ch);
  });

  it("a rejected dialer update keeps the old material", async () => {
    const l = await listen({ ca, ...server });
    const dialer = new TlsDialer({ credentials: { ca, ...client } });
    assert.throws(
      () => dialer.updateCredentials({ ca, cert: client.cert, key: otherKey }),
      malformed(/does not match/),
    );
    const ch = await dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "localhost" });
    await echoOnce(ch);
  });
});
