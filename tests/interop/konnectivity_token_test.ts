/**
 * Token agents with the server, agents and token issuing as real CLI processes (this
 * test's runtime) and curl through the mutual-TLS CONNECT frontend: a token printed by
 * `spokewire-konnectivity token` registers an agent that has no certificate; a token for
 * another node, an expired one, one for another audience and one signed by a key the
 * server does not hold are each refused with HTTP 401 and the reason in the server's
 * log and the agent's; the agent re-reads its token file at each reconnect, and the
 * server re-reads its key files, so both rotate without a restart.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import {
  createServiceTokenVerifier,
  exportPrivateKeyPem,
  generateKeyPair,
  issueServiceToken,
} from "../../mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import {
  cli,
  curlViaFrontend,
  exited,
  killChild,
  startCliServer,
  waitLine,
} from "../_harness/konnectivity_cli.ts";
import { peerSkip } from "../_harness/peers.ts";
import { run } from "../_harness/pki_openssl.ts";

const pki = makeTestPki();
const dir = mkdtempSync(join(tmpdir(), "spokewire-ktoken-"));
const children: ChildProcess[] = [];
let http: Server;
let httpPort: number;

const stop = killChild;

async function publicPem(key: CryptoKey): Promise<string> {
  const der = new Uint8Array(await crypto.subtle.exportKey("spki", key));
  const b = btoa(String.fromCharCode(...der));
  return `-----BEGIN PUBLIC KEY-----\n${b.match(/.{1,64}/g)?.join("\n")}\n-----END PUBLIC KEY-----\n`;
}

/** Run the CLI to completion; its exit code and output. */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = cli(args);
  children.push(c);
  let stdout = "";
  let stderr = "";
  c.stdout?.on("data", (b: Uint8Array) => (stdout += new TextDecoder().decode(b)));
  c.stderr?.on("data", (b: Uint8Array) => (stderr += new TextDecoder().decode(b)));
  const timer = setTimeout(() => stop(c), 30_000);
  return exited(c).then((code) => {
    clearTimeout(timer);
    return { code, stdout, stderr };
  });
}

let signKeyPath: string;
let pubPath: string;
let otherKey: CryptoKeyPair;
let newKey: CryptoKeyPair;

before(async () => {
  http = createServer((req, res) => res.end(`target says ${req.url}`));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  httpPort = (http.address() as { port: number }).port;
  const keys = await generateKeyPair("ecdsa-p256");
  signKeyPath = join(dir, "sign.key");
  pubPath = join(dir, "sign.pub");
  writeFileSync(signKeyPath, await exportPrivateKeyPem(keys.privateKey));
  writeFileSync(pubPath, await publicPem(keys.publicKey));
  otherKey = await generateKeyPair("ed25519");
  newKey = await generateKeyPair("ed25519");
});

after(async () => {
  for (const c of children) await stop(c);
  await new Promise<void>((r) => http.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});

async function cliToken(node: string, extra: string[] = []): Promise<string> {
  const r = await runCli(["token", "--signing-key", signKeyPath, "--node", node, ...extra]);
  assert.equal(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  return token;
}

function tokenFile(name: string, token: string): string {
  const p = join(dir, name);
  writeFileSync(p, `${token}\n`);
  return p;
}

function startServer() {
  return startCliServer(pki, children, ["--token-key", pubPath]);
}

/** An agent with a token and no certificate. */
function agent(agentPort: number, id: string, file: string) {
  const a = cli([
    "agent",
    "--server",
    `127.0.0.1:${agentPort}`,
    "--server-name",
    "localhost",
    "--ca",
    pki.ca.certPath,
    "--agent-id",
    id,
    "--token-file",
    file,
    "--allow",
    `127.0.0.1:${httpPort}`,
  ]);
  children.push(a);
  return a;
}

function viaFrontend(frontendPort: number, path: string) {
  return curlViaFrontend(pki, frontendPort, `http://127.0.0.1:${httpPort}${path}`);
}

describe("Konnectivity token agents (CLI processes)", { skip: peerSkip("curl") }, () => {
  it("a CLI-issued token registers an agent; bad tokens are refused with their reason", {
    timeout: 180_000,
  }, async () => {
    const { server, agentPort, frontendPort } = await startServer();
    const node1 = await cliToken("node-1", ["--ttl", "10m"]);

    // Refusals first, each by a real agent process: the reason reaches both logs.
    const now = Date.now();
    const cases: [string, string, string][] = [
      ["wrong-node", "node-2", node1],
      [
        "expired",
        "node-1",
        await issueServiceToken(readFileSync(signKeyPath, "utf8"), {
          issuer: "spokewire",
          audience: "system:konnectivity-server",
          node: "node-1",
          lifetimeMs: 60_000,
          now: () => now - 3_600_000,
        }),
      ],
      ["wrong-audience", "node-1", await cliToken("node-1", ["--audience", "kubelet"])],
      [
        "unknown-key",
        "node-1",
        await issueServiceToken(otherKey.privateKey, {
          issuer: "spokewire",
          audience: "system:konnectivity-server",
          node: "node-1",
        }),
      ],
    ];
    for (const [reason, id, token] of cases) {
      const logged = waitLine(
        server,
        new RegExp(`agent refused \\(401\\): token refused \\(${reason}\\)`),
        `server refusing ${reason}`,
        "stderr",
      );
      const a = agent(agentPort, id, tokenFile(`${reason}.token`, token));
      const told = waitLine(
        a,
        new RegExp(`HTTP 401\\): token refused \\(${reason}\\)`),
        `agent told ${reason}`,
        "stderr",
      );
      await logged;
      await told;
      await stop(a);
    }

    // The good token: the agent registers as a token agent and carries traffic.
    const registered = waitLine(server, /agent node-1 registered \(token\)/, "server", "stderr");
    const a1 = agent(agentPort, "node-1", tokenFile("node-1.token", node1));
    await registered;
    for (let i = 0; i < 3; i++) {
      const r = await viaFrontend(frontendPort, `/${i}`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `target says /${i}`);
    }
    await stop(a1);
    process.kill(server.pid as number, "SIGTERM");
    assert.equal(await exited(server), 0);
  });

  it("rotation without restarts: the agent re-reads its token, the server its keys", {
    timeout: 120_000,
  }, async () => {
    const { server, agentPort, frontendPort } = await startServer();
    const oldPub = readFileSync(pubPath, "utf8");
    // 1. The agent starts with an expired token: refused.
    const file = tokenFile(
      "rotating.token",
      await issueServiceToken(readFileSync(signKeyPath, "utf8"), {
        issuer: "spokewire",
        audience: "system:konnectivity-server",
        node: "node-1",
        lifetimeMs: 60_000,
        now: () => Date.now() - 3_600_000,
      }),
    );
    const expired = waitLine(server, /token refused \(expired\)/, "server", "stderr");
    const a = agent(agentPort, "node-1", file);
    await expired;
    // 2. A fresh token, signed by a key the server does not hold yet, replaces it: the
    //    agent's next attempt presents it (it re-read the file) and is refused for the key.
    const unknown = waitLine(server, /token refused \(unknown-key\)/, "server", "stderr");
    writeFileSync(
      file,
      await issueServiceToken(newKey.privateKey, {
        issuer: "spokewire",
        audience: "system:konnectivity-server",
        node: "node-1",
      }),
    );
    await unknown;
    // 3. The server's key file gains the new key beside the old one: the next attempt
    //    registers, and traffic flows. Neither process was restarted.
    const registered = waitLine(server, /agent node-1 registered \(token\)/, "server", "stderr");
    writeFileSync(pubPath, (await publicPem(newKey.publicKey)) + oldPub);
    await registered;
    assert.equal((await viaFrontend(frontendPort, "/rotated")).stdout, "target says /rotated");
    // The old key still verifies (both held): a CLI token from it registers node-2.
    const registered2 = waitLine(server, /agent node-2 registered \(token\)/, "server", "stderr");
    const a2 = agent(agentPort, "node-2", tokenFile("node-2.token", await cliToken("node-2")));
    await registered2;
    await stop(a);
    await stop(a2);
    await stop(server);
  });

  it("openssl: its keys sign and verify, and it verifies our signatures", {
    skip: peerSkip("openssl"),
    timeout: 60_000,
  }, async () => {
    for (const [alg, genArgs] of [
      ["ed25519", ["-algorithm", "ed25519"]],
      ["p256", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]],
    ] as const) {
      const key = join(dir, `ossl-${alg}.key`);
      const pub = join(dir, `ossl-${alg}.pub`);
      assert.equal(run("openssl", ["genpkey", ...genArgs, "-out", key]).status, 0);
      assert.equal(run("openssl", ["pkey", "-in", key, "-pubout", "-out", pub]).status, 0);
      const r = await runCli(["token", "--signing-key", key, "--node", "node-5", "--ttl", "5m"]);
      assert.equal(r.code, 0, r.stderr);
      const token = r.stdout.trim();
      const [h, c, sig] = token.split(".");
      writeFileSync(join(dir, "input"), `${h}.${c}`);
      const raw = Uint8Array.from(atob(sig.replace(/-/g, "+").replace(/_/g, "/")), (x) =>
        x.charCodeAt(0),
      );
      // openssl verifies the JWS signature over header.claims with the public key.
      const v = osslVerify(alg, pub, raw);
      assert.equal(v.status, 0, v.stderr + v.stdout);
      // The openssl public key file verifies it in our verifier.
      const verifier = await createServiceTokenVerifier({
        keys: [readFileSync(pub, "utf8")],
        issuer: "spokewire",
        audience: "system:konnectivity-server",
      });
      assert.equal((await verifier.verify(token, "node-5")).node, "node-5");
      // A flipped byte fails in openssl too (the check above can fail).
      raw[5] ^= 1;
      assert.notEqual(osslVerify(alg, pub, raw).status, 0);
    }
  });
});

/** openssl's verdict on a JWS signature (`raw`) over the file `input` with the key `pub`. */
function osslVerify(alg: "ed25519" | "p256", pub: string, raw: Uint8Array) {
  const sig = join(dir, "sig");
  const input = join(dir, "input");
  if (alg === "ed25519") {
    writeFileSync(sig, raw);
    return run("openssl", [
      "pkeyutl",
      "-verify",
      "-pubin",
      "-inkey",
      pub,
      "-rawin",
      "-in",
      input,
      "-sigfile",
      sig,
    ]);
  }
  writeFileSync(sig, ecdsaDer(raw));
  return run("openssl", ["dgst", "-sha256", "-verify", pub, "-signature", sig, input]);
}

/** ECDSA r||s (JWS) as a DER SEQUENCE of two INTEGERs (what openssl reads). */
function ecdsaDer(rs: Uint8Array): Uint8Array {
  const int = (b: Uint8Array): number[] => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = [...b.subarray(i)];
    if (v[0] & 0x80) v.unshift(0);
    return [0x02, v.length, ...v];
  };
  const body = [...int(rs.subarray(0, 32)), ...int(rs.subarray(32))];
  return new Uint8Array([0x30, body.length, ...body]);
}
