/**
 * The server's verdict on our client certificate, against spokewire's own listener:
 * under Node (which reports the server's session ticket) a refusal fails the dial
 * itself; under Deno (which does not) the dial resolves without waiting and the
 * refusal fails the first read or write. Never a clean end of stream.
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
  PeerVerificationError,
  TlsDialer,
  type TlsListener,
} from "../../mod.ts";

let ca: string;
let server: { cert: string; key: string };
let client: { cert: string; key: string };
const listeners: TlsListener[] = [];

before(async () => {
  const root = await createRootCa({ commonName: "verdict test root" });
  ca = certificateToPem(root.certificate);
  const s = await issueCredential(root, { profile: "server", dnsNames: ["localhost"] });
  const c = await issueCredential(root, { profile: "client", commonName: "system:node:n1" });
  server = { cert: certificateToPem(s.certificate), key: await exportPrivateKeyPem(s.privateKey) };
  client = { cert: certificateToPem(c.certificate), key: await exportPrivateKeyPem(c.privateKey) };
});
after(async () => {
  for (const l of listeners) await l.close();
});

async function listen(admit: boolean): Promise<number> {
  const l = await listenTls(
    { host: "127.0.0.1", port: 0 },
    { credentials: { ca, ...server }, authorize: () => admit },
  );
  listeners.push(l);
  void (async () => {
    for await (const ch of l) ch.readable.pipeTo(ch.writable).catch(() => {});
  })();
  return Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
}

/** Where the refusal showed: "dial", "io", or a failure string. */
async function refusalSite(dialing: Promise<Channel>): Promise<{ site: string; err: unknown }> {
  let ch: Channel;
  try {
    ch = await dialing;
  } catch (err) {
    return { site: "dial", err };
  }
  try {
    await ch.writable.getWriter().write(new Uint8Array([1]));
    const { done } = await ch.readable.getReader().read();
    ch.abort();
    return { site: done ? "end of stream" : "data", err: undefined };
  } catch (err) {
    return { site: "io", err };
  }
}

function refused(err: unknown): void {
  assert.ok(err instanceof PeerVerificationError, `expected PeerVerificationError, got ${err}`);
  assert.equal(err.reason, "client-cert-refused");
}

describe("TLS: the listener's refusal of our certificate reaches the dialer", () => {
  it("default options: refused at the dial, in both runtimes", async () => {
    const port = await listen(false);
    const dialer = new TlsDialer({ credentials: { ca, ...client } });
    const { site, err } = await refusalSite(
      dialer.dial({ host: "127.0.0.1", port, name: "localhost" }),
    );
    assert.equal(site, "dial");
    refused(err);
  });

  it("no wait (refusalWindowMs 0): refused at the first read or write, in both runtimes", async () => {
    const port = await listen(false);
    const dialer = new TlsDialer({ credentials: { ca, ...client }, refusalWindowMs: 0 });
    const { site, err } = await refusalSite(
      dialer.dial({ host: "127.0.0.1", port, name: "localhost" }),
    );
    assert.ok(site === "io" || site === "dial", `refusal showed as ${site}`);
    refused(err);
  });

  it("an admitted client gets a working channel either way", async () => {
    const port = await listen(true);
    for (const refusalWindowMs of [0, 200]) {
      const dialer = new TlsDialer({ credentials: { ca, ...client }, refusalWindowMs });
      const ch = await dialer.dial({ host: "127.0.0.1", port, name: "localhost" });
      const w = ch.writable.getWriter();
      await w.write(new Uint8Array([9]));
      const { value } = await ch.readable.getReader().read();
      assert.deepEqual([...(value ?? [])], [9]);
      ch.abort();
    }
  });
});
