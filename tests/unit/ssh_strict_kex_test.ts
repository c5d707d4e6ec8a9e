import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { describe, it } from "node:test";
import { ProtocolError, SpokewireError } from "../../mod.ts";
import { SSH_MSG } from "../../src/ssh/constants.ts";
import { startKex } from "../../src/ssh/kex.ts";
import { encodeKexInit } from "../../src/ssh/kexinit.ts";
import { SshConnection } from "../../src/ssh/mod.ts";
import { PacketDecoder, PacketEncoder } from "../../src/ssh/packet_codec.ts";

const KEY = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACA/Zezx42FUPbORIpEyOwMFAVfw3FrT8OOIw+Irp9vBAAAAAJBtNs1gbTbN
YAAAAAtzc2gtZWQyNTUxOQAAACA/Zezx42FUPbORIpEyOwMFAVfw3FrT8OOIw+Irp9vBAA
AAAEDshhYC/3pJfm8zVolK0gSJ/9kevMPJSVybUXR/q6JsZj9l7PHjYVQ9s5EikTI7AwUB
V/DcWtPw44jD4iun28EAAAAACXRlc3RAdW5pdAECAwQ=
-----END OPENSSH PRIVATE KEY-----
`;

/** A fake server: banner, then the given packets (unencrypted); records the client's message types. */
async function fake(
  packets: Uint8Array[],
): Promise<{ port: number; seen: number[]; close(): Promise<void> }> {
  const seen: number[] = [];
  const socks = new Set<Socket>();
  const srv = createServer((s) => {
    socks.add(s);
    s.on("error", () => {});
    const enc = new PacketEncoder();
    s.write("SSH-2.0-fake_1.0\r\n");
    for (const p of packets) for (const part of enc.encode(p)) s.write(part);
    const dec = new PacketDecoder();
    let banner = true;
    let buf = new Uint8Array(0);
    s.on("data", (d: Uint8Array) => {
      if (banner) {
        const all = new Uint8Array(buf.byteLength + d.byteLength);
        all.set(buf);
        all.set(d, buf.byteLength);
        const nl = all.indexOf(0x0a);
        if (nl < 0) {
          buf = all;
          return;
        }
        banner = false;
        d = all.subarray(nl + 1);
      }
      dec.push(d);
      for (let i = 0; i < 100; i++) {
        const p = dec.next();
        if (!p) break;
        seen.push(p[0]!);
        // After the client's ECDH_INIT: a fake cannot finish the exchange; hang up.
        if (p[0] === SSH_MSG.KEX_ECDH_INIT) s.end();
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return {
    port: (srv.address() as { port: number }).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

function kexinit(strict: boolean): Uint8Array {
  return encodeKexInit({
    kex: ["curve25519-sha256", ...(strict ? ["kex-strict-s-v00@openssh.com"] : [])],
    hostKey: ["ssh-ed25519"],
    cipherC2S: ["aes128-gcm@openssh.com"],
    cipherS2C: ["aes128-gcm@openssh.com"],
    macC2S: ["hmac-sha2-256-etm@openssh.com"],
    macS2C: ["hmac-sha2-256-etm@openssh.com"],
    compC2S: ["none"],
    compS2C: ["none"],
  });
}

const IGNORE = Uint8Array.from([SSH_MSG.IGNORE, 0, 0, 0, 0]);

async function attempt(port: number, requireStrictKex?: boolean): Promise<unknown> {
  try {
    await SshConnection.connect({
      host: "127.0.0.1",
      port,
      username: "u",
      privateKey: KEY,
      hostKeys: { fingerprints: [`SHA256:${"A".repeat(43)}`] },
      config: {
        handshakeTimeoutMs: 5000,
        ...(requireStrictKex === undefined ? {} : { requireStrictKex }),
      },
    });
  } catch (e) {
    return e;
  }
  assert.fail("connected to a fake server");
}

describe("SSH strict key exchange (Terrapin defence)", () => {
  it("a server without kex-strict-s-v00 is refused by default", async () => {
    const f = await fake([kexinit(false)]);
    const e = await attempt(f.port);
    await f.close();
    assert.ok(e instanceof ProtocolError, `got ${e}`);
    assert.match(e.message, /strict/);
    assert.ok(!f.seen.includes(SSH_MSG.KEX_ECDH_INIT), "key exchange went on");
  });
  it("with requireStrictKex false, the same server gets our ECDH_INIT", async () => {
    const f = await fake([kexinit(false)]);
    const e = await attempt(f.port, false);
    await f.close();
    assert.ok(e instanceof SpokewireError && e.code === "DIAL_FAILED", `got ${e}`);
    assert.deepEqual(f.seen, [SSH_MSG.KEXINIT, SSH_MSG.KEX_ECDH_INIT]);
  });
  it("a strict server whose first packet is not KEXINIT is refused", async () => {
    const f = await fake([IGNORE, kexinit(true)]);
    const e = await attempt(f.port, false);
    await f.close();
    assert.ok(e instanceof ProtocolError, `got ${e}`);
  });
  it("any other message during the initial exchange with a strict server is refused", async () => {
    const f = await fake([kexinit(true), IGNORE]);
    const e = await attempt(f.port);
    await f.close();
    assert.ok(e instanceof ProtocolError, `got ${e}`);
    assert.match(e.message, /unexpected IGNORE/);
  });
  it("X25519: an all-zero (small-order) public key never yields a shared secret", async () => {
    const k = await startKex("curve25519-sha256");
    await assert.rejects(k.derive(new Uint8Array(32)), ProtocolError);
    await assert.rejects(k.derive(new Uint8Array(31)), ProtocolError);
  });
});
