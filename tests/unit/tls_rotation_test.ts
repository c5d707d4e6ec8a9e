import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { Channel } from "../../mod.ts";
import {
  type CertificateAuthority,
  type CertificateMaterial,
  CertificateRotator,
  certificateToDer,
  createIntermediateCa,
  createRootCa,
  issueCredential,
} from "../../src/pki/mod.ts";
import { readAll, writeAll } from "../../src/testing/mod.ts";
import {
  listenTls,
  TlsDialer,
  type TlsListener,
  tlsCredentialsFromMaterial,
  updateTlsCredentialsOnRotate,
} from "../../src/tls/mod.ts";
import { ManualClock } from "../_harness/pki_clock.ts";

// Certificates are issued by src/pki at the real time (the TLS stacks check
// validity against it); only the rotator's schedule runs on the manual clock.

const DAY = 86_400_000;
const enc = new TextEncoder();
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

function portOf(l: { addr: string }): number {
  return Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
}

async function fingerprint(m: CertificateMaterial): Promise<string> {
  const der = certificateToDer(m.certificate);
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", der.slice()));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const issueServer = (ca: CertificateAuthority) =>
  issueCredential(ca, {
    profile: "server",
    commonName: "system:node:node-1",
    organizations: ["system:nodes"],
    dnsNames: ["localhost", "node-1.example"],
    ips: ["127.0.0.1"],
    validityMs: 10 * DAY,
  });

const issueClient = (ca: CertificateAuthority) =>
  issueCredential(ca, {
    profile: "client",
    commonName: "system:node:node-1",
    organizations: ["system:nodes"],
    validityMs: 10 * DAY,
  });

async function pair(
  dialer: TlsDialer,
  l: TlsListener,
  iter: AsyncIterator<Channel>,
): Promise<[Channel, Channel]> {
  const [c, s] = await Promise.all([
    dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "localhost" }),
    iter.next().then((r) => r.value as Channel),
  ]);
  return [c, s];
}

describe("TLS: live rotation from the PKI rotation helper", () => {
  it("CertificateRotator -> listener: the open channel keeps working, the next dial sees the new certificate", async () => {
    const ca = await createRootCa({ commonName: "rotation-ca" });
    const initial = await issueServer(ca);
    const l = await listenTls(
      { port: 0 },
      { credentials: await tlsCredentialsFromMaterial(initial, ca.certificate) },
    );
    closers.push(() => l.close());
    const iter = l[Symbol.asyncIterator]();
    const dialer = new TlsDialer({
      credentials: await tlsCredentialsFromMaterial(await issueClient(ca), ca.certificate),
    });

    const clock = new ManualClock(Date.now());
    let rotated = deferred<CertificateMaterial>();
    const swap = updateTlsCredentialsOnRotate(l, ca.certificate);
    const rotator = new CertificateRotator({
      initial,
      clock,
      renew: () => issueServer(ca),
      onRotate: async (m) => {
        await swap(m);
        rotated.resolve(m);
      },
    });
    closers.push(() => rotator.stop());
    rotator.start();

    const [c1, s1] = await pair(dialer, l, iter);
    assert.equal(c1.peer.fingerprint, await fingerprint(initial));

    // Time reaches the renewal point: the rotator renews and swaps the listener's material.
    clock.advanceTo(rotator.renewAt);
    const next = await rotated.promise;
    assert.notEqual(next.certificate.serialNumber, initial.certificate.serialNumber);

    const [c2, s2] = await pair(dialer, l, iter);
    assert.equal(
      c2.peer.fingerprint,
      await fingerprint(next),
      "the next dial sees the new certificate",
    );
    assert.notEqual(c2.peer.fingerprint, c1.peer.fingerprint);

    // The channel opened before the rotation still carries data both ways.
    const [got, back] = await Promise.all([
      readAll(s1),
      readAll(c1),
      writeAll(c1, [enc.encode("after rotation")]),
      writeAll(s1, [enc.encode("still here")]),
    ]);
    assert.deepEqual(got, enc.encode("after rotation"));
    assert.deepEqual(back, enc.encode("still here"));
    assert.equal(c1.peer.fingerprint, await fingerprint(initial));

    // And a second rotation goes the same way.
    rotated = deferred();
    clock.advanceTo(rotator.renewAt);
    const third = await rotated.promise;
    const [c3, s3] = await pair(dialer, l, iter);
    assert.equal(c3.peer.fingerprint, await fingerprint(third));
    for (const ch of [c2, s2, c3, s3]) ch.abort();
  });

  it("CertificateRotator -> dialer: the listener sees the client's new certificate on the next dial", async () => {
    const ca = await createRootCa({ commonName: "rotation-ca-2" });
    const l = await listenTls(
      { port: 0 },
      { credentials: await tlsCredentialsFromMaterial(await issueServer(ca), ca.certificate) },
    );
    closers.push(() => l.close());
    const iter = l[Symbol.asyncIterator]();
    const initial = await issueClient(ca);
    const dialer = new TlsDialer({
      credentials: await tlsCredentialsFromMaterial(initial, ca.certificate),
    });
    const rotator = new CertificateRotator({
      initial,
      clock: new ManualClock(Date.now()),
      renew: () => issueClient(ca),
      onRotate: updateTlsCredentialsOnRotate(dialer, ca.certificate),
    });
    closers.push(() => rotator.stop());
    const [c1, s1] = await pair(dialer, l, iter);
    assert.equal(s1.peer.fingerprint, await fingerprint(initial));
    const next = await rotator.rotateNow();
    const [c2, s2] = await pair(dialer, l, iter);
    assert.equal(s2.peer.fingerprint, await fingerprint(next));
    assert.equal(s2.peer.id, "system:node:node-1");
    for (const ch of [c1, s1, c2, s2]) ch.abort();
  });

  it("material issued under an intermediate carries its chain; the peer needs only the root", async () => {
    const root = await createRootCa({ commonName: "root", pathLength: 1 });
    const inter = await createIntermediateCa(root, { commonName: "inter", pathLength: 0 });
    const server = await issueServer(inter);
    const creds = await tlsCredentialsFromMaterial(server, root.certificate);
    assert.equal(creds.cert?.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.match(creds.key ?? "", /BEGIN PRIVATE KEY/);
    const l = await listenTls({ port: 0 }, { credentials: creds });
    closers.push(() => l.close());
    const dialer = new TlsDialer({
      credentials: await tlsCredentialsFromMaterial(await issueClient(inter), [root.certificate]),
    });
    const [c, s] = await pair(dialer, l, l[Symbol.asyncIterator]());
    const chain = (c.peer.details?.chain ?? []) as unknown[];
    assert.ok(chain.length >= 2, `chain of ${chain.length}`);
    c.abort();
    s.abort();
  });

  it("the updater rejects a target without updateCredentials()", () => {
    assert.throws(() => updateTlsCredentialsOnRotate({} as unknown as TlsDialer, "x"), TypeError);
  });
});
