import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { MalformedInputError } from "../../mod.ts";
import {
  createHostKeyVerifier,
  DEFAULT_SSH_CLIENT_CONFIG,
  parseOpenSshPrivateKey,
  sshKeyFingerprint,
  verifySshClientConfig,
} from "../../src/ssh/mod.ts";
import { peerSkip } from "../_harness/peers.ts";

describe("SSH client configuration and key loading", () => {
  it("defaults verify; a bad field is a RangeError naming it", () => {
    assert.deepEqual(verifySshClientConfig(), DEFAULT_SSH_CLIENT_CONFIG);
    assert.throws(() => verifySshClientConfig({ receiveWindow: 1 }), /receiveWindow/);
    assert.throws(() => verifySshClientConfig({ handshakeTimeoutMs: 0 }), /handshakeTimeoutMs/);
    assert.throws(() => verifySshClientConfig({ maxPacketLength: 1000 }), /maxPacketLength/);
    assert.throws(
      () => verifySshClientConfig({ requireStrictKex: "yes" as unknown as boolean }),
      /requireStrictKex/,
    );
  });
  it("a host key policy must trust something, and pins must be SHA256: fingerprints", () => {
    assert.throws(() => createHostKeyVerifier({}), TypeError);
    assert.throws(() => createHostKeyVerifier({ fingerprints: ["MD5:aa:bb"] }), TypeError);
    assert.throws(
      () => createHostKeyVerifier({ knownHosts: "host ssh-ed25519 !!!" }),
      MalformedInputError,
    );
  });
  it("OpenSSH private keys: each type loads and its public blob matches ssh-keygen's; others are MALFORMED_INPUT", {
    skip: peerSkip("ssh-keygen"),
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "spokewire-keys-"));
    try {
      for (const [t, bits] of [
        ["ed25519", []],
        ["ecdsa", ["-b", "256"]],
        ["rsa", ["-b", "2048"]],
      ] as const) {
        const f = join(dir, t);
        execFileSync("ssh-keygen", ["-t", t, ...bits, "-N", "", "-q", "-f", f]);
        const key = await parseOpenSshPrivateKey(readFileSync(f, "utf8"));
        const want = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${f}.pub`], {
          encoding: "utf8",
        });
        assert.equal(sshKeyFingerprint(key.publicBlob), want.split(" ")[1]);
        const sig = await key.sign(
          new Uint8Array([1, 2, 3]),
          t === "rsa" ? "rsa-sha2-256" : key.type,
        );
        assert.ok(sig.byteLength > 64);
      }
      const enc = join(dir, "enc");
      execFileSync("ssh-keygen", ["-t", "ed25519", "-N", "secret-pass", "-q", "-f", enc]);
      await assert.rejects(parseOpenSshPrivateKey(readFileSync(enc, "utf8")), MalformedInputError);
      await assert.rejects(parseOpenSshPrivateKey("not a key"), MalformedInputError);
      await assert.rejects(
        parseOpenSshPrivateKey(
          "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
        ),
        MalformedInputError,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
