/**
 * An agent may announce only what its credential allows, with the server and agents as
 * real CLI processes (this test's runtime) and curl through the CONNECT frontend. The
 * agent of node-2 (certificate SANs localhost, 127.0.0.1) serves the target; the agent
 * of node-1 (SANs node-1.example, 127.0.0.2) claiming node-2's host, IP, a CIDR around
 * it, or the default route is refused at registration with HTTP 403, and the server's
 * log line names the agent and the claim; every dial meant for node-2 reaches node-2.
 * node-1's own host is accepted, and `--agent-claims` can grant more.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
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

const pki = makeTestPki();
const dir = mkdtempSync(join(tmpdir(), "spokewire-kclaims-"));
const children: ChildProcess[] = [];
let http: Server;
let httpPort: number;

const stop = killChild;

before(async () => {
  http = createServer((req, res) => res.end(`target says ${req.url}`));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  httpPort = (http.address() as { port: number }).port;
});

after(async () => {
  for (const c of children) await stop(c);
  await new Promise<void>((r) => http.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});

/** The server's flags: agent listener on loopback, our certificate and CA. */
function serverArgs(extra: string[]): string[] {
  const files = [
    "--cert",
    pki.server.certPath,
    "--key",
    pki.server.keyPath,
    "--ca",
    pki.ca.certPath,
  ];
  return ["server", "--agent-bind", "127.0.0.1:0", ...files, ...extra];
}

/** The CLI server with an mTLS CONNECT frontend; its ports. */
function startServer(extra: string[] = []) {
  return startCliServer(pki, children, extra);
}

function agent(agentPort: number, who: "node1Agent" | "node2Agent", flags: string[]) {
  const a = cli([
    "agent",
    "--server",
    `127.0.0.1:${agentPort}`,
    "--server-name",
    "localhost",
    "--ca",
    pki.ca.certPath,
    "--cert",
    pki[who].certPath,
    "--key",
    pki[who].keyPath,
    ...flags,
  ]);
  children.push(a);
  return a;
}

function viaFrontend(frontendPort: number, url: string) {
  return curlViaFrontend(pki, frontendPort, url);
}

describe("Konnectivity: an agent may claim only what its credential allows", {
  skip: peerSkip("curl"),
}, () => {
  it("node-1 claiming node-2's host, IP, CIDR or default route is refused; node-2 gets every dial", {
    timeout: 120_000,
  }, async () => {
    const { server, agentPort, frontendPort } = await startServer();
    const registered2 = waitLine(server, /agent node-2 registered/, "server", "stderr");
    // node-2 serves the target; node-1 may dial nothing there, so a dial that reached it fails.
    agent(agentPort, "node2Agent", ["--host", "127.0.0.1", "--allow", `127.0.0.1:${httpPort}`]);
    await registered2;
    for (const [claim, flags] of [
      ["host localhost", ["--host", "localhost"]],
      ["host 127.0.0.1", ["--host", "127.0.0.1"]],
      ["cidr 127.0.0.0/8", ["--cidr", "127.0.0.0/8"]],
      ["default-route", ["--default-route"]],
    ] as const) {
      const refused = waitLine(
        server,
        new RegExp(
          `agent refused \\(403\\): agent node-1 may not claim ${claim.replaceAll(".", "\\.")}`,
        ),
        `server refusing node-1's ${claim}`,
        "stderr",
      );
      const a1 = agent(agentPort, "node1Agent", [...flags, "--allow", "127.0.0.2:*"]);
      await refused;
      for (let i = 0; i < 4; i++) {
        const r = await viaFrontend(frontendPort, `http://127.0.0.1:${httpPort}/${i}`);
        assert.equal(r.code, 0, `${claim}, dial ${i}: ${r.stderr}`);
        assert.equal(r.stdout, `target says /${i}`);
      }
      await stop(a1);
    }
    // node-1's own name is its to claim.
    const registered1 = waitLine(server, /agent node-1 registered/, "server", "stderr");
    const a1 = agent(agentPort, "node1Agent", [
      "--host",
      "node-1.example",
      "--allow",
      "127.0.0.2:*",
    ]);
    await registered1;
    const r = await viaFrontend(frontendPort, `http://127.0.0.1:${httpPort}/after`);
    assert.equal(r.stdout, "target says /after", r.stderr);
    await stop(a1);
    process.kill(server.pid as number, "SIGTERM");
    assert.equal(await exited(server), 0);
  });

  it("--agent-claims grants a node more than its certificate names", {
    timeout: 60_000,
  }, async () => {
    const file = join(dir, "claims.json");
    writeFileSync(
      file,
      JSON.stringify({ "node-1": { cidrs: ["10.1.0.0/16"], defaultRoute: true } }),
    );
    const { server, agentPort } = await startServer(["--agent-claims", file]);
    const registered = waitLine(server, /agent node-1 registered/, "server", "stderr");
    const a1 = agent(agentPort, "node1Agent", [
      "--cidr",
      "10.1.2.0/24",
      "--default-route",
      "--allow",
      "127.0.0.2:*",
    ]);
    await registered;
    await stop(a1);
    const refused = waitLine(
      server,
      /agent node-1 may not claim cidr 10\.2\.0\.0\/16/,
      "server",
      "stderr",
    );
    const a2 = agent(agentPort, "node1Agent", ["--cidr", "10.2.0.0/16", "--allow", "127.0.0.2:*"]);
    await refused;
    await stop(a2);
    await stop(server);
  });

  it("a malformed --agent-claims file is a usage error (exit 2)", async () => {
    const file = join(dir, "bad-claims.json");
    writeFileSync(file, JSON.stringify({ "node-1": { cidrs: ["not-a-cidr"] } }));
    const s = cli(serverArgs(["--agent-claims", file]));
    children.push(s);
    assert.equal(await exited(s), 2);
  });
});
