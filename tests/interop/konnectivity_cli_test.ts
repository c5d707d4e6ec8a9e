/**
 * The CLI as child processes: a server (agent listener plus CONNECT frontends)
 * and an agent, in this test's runtime, with real `curl` through them. Every
 * child is stopped by its PID.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { cli, curlViaFrontend, exited, waitLine } from "../_harness/konnectivity_cli.ts";
import { peerSkip } from "../_harness/peers.ts";

const pki = makeTestPki();
const dir = mkdtempSync(join(tmpdir(), "spokewire-kcli-"));
const children: ChildProcess[] = [];
let http: Server;
let httpPort: number;

before(async () => {
  http = createServer((req, res) => res.end(`target says ${req.url}`));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  httpPort = (http.address() as { port: number }).port;
});

after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.pid !== undefined) {
      process.kill(c.pid, "SIGKILL");
      await exited(c);
    }
  }
  await new Promise<void>((r) => http.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});

describe("spokewire-konnectivity CLI", () => {
  it("usage errors exit with 2", async () => {
    const c = cli(["agent", "--server", "127.0.0.1:1"]);
    children.push(c);
    assert.equal(await exited(c), 2);
    const d = cli(["frobnicate"]);
    children.push(d);
    assert.equal(await exited(d), 2);
  });

  it("server + agent as processes; curl through the mTLS CONNECT frontend; SIGTERM stops both", {
    skip: peerSkip("curl"),
  }, async () => {
    const server = cli([
      "server",
      "--agent-bind",
      "127.0.0.1:0",
      "--cert",
      pki.server.certPath,
      "--key",
      pki.server.keyPath,
      "--ca",
      pki.ca.certPath,
      "--connect-bind",
      "127.0.0.1:0",
      "--connect-uds",
      join(dir, "k.sock"),
    ]);
    children.push(server);
    const frontendLine = waitLine(server, /connect frontend on 127\.0\.0\.1:(\d+)/, "server");
    const agentPort = Number(
      (await waitLine(server, /agent listener on [^:]+:(\d+)/, "server"))[1],
    );
    const frontendPort = Number((await frontendLine)[1]);
    const agent = cli([
      "agent",
      "--server",
      `127.0.0.1:${agentPort}`,
      "--ca",
      pki.ca.certPath,
      "--cert",
      pki.client.certPath,
      "--key",
      pki.client.keyPath,
      "--allow",
      `127.0.0.1:${httpPort}`,
    ]);
    children.push(agent);
    await waitLine(agent, /agent connected/, "agent");
    const r = await curlViaFrontend(pki, frontendPort, `http://127.0.0.1:${httpPort}/cli`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "target says /cli");
    process.kill(agent.pid as number, "SIGTERM");
    assert.equal(await exited(agent), 0);
    process.kill(server.pid as number, "SIGTERM");
    assert.equal(await exited(server), 0);
  });
});
