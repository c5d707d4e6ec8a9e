/**
 * Node-side authorisation per caller, with the server and agent as real CLI processes
 * (this test's runtime): the agent's `--allow-for CALLER=PATTERN` lets each caller the
 * server dials for (a CONNECT client's certificate name, or the name given to the Unix
 * socket frontend) reach only its own targets; every other dial is refused at the agent,
 * logged there with the caller and the target, and answered 502 at the frontend.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
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
const dir = mkdtempSync(join(tmpdir(), "spokewire-kcaller-"));
const children: ChildProcess[] = [];
const targets: Server[] = [];
let kubelet: number;
let other: number;

async function target(name: string): Promise<number> {
  const s = createServer((req, res) => res.end(`${name} says ${req.url}`));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  targets.push(s);
  return (s.address() as { port: number }).port;
}

before(async () => {
  kubelet = await target("kubelet");
  other = await target("other");
});

after(async () => {
  for (const c of children) await killChild(c);
  for (const s of targets) await new Promise<void>((r) => s.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});

/** CONNECT through the Unix socket frontend, then GET `path`; the whole reply, bounded in time. */
function viaUds(sock: string, port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(sock);
    let got = "";
    let sentGet = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no reply within 20 s: ${got}`));
    }, 20_000);
    s.on("connect", () => s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`));
    s.on("data", (b: Uint8Array) => {
      got += new TextDecoder().decode(b);
      if (!sentGet && /^HTTP\/1\.1 200 [^\r]*\r\n(?:[^\r]*\r\n)*\r\n/.test(got)) {
        sentGet = true;
        s.write(`GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
      }
    });
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

describe("Konnectivity: per-caller allow-lists at the agent (CLI processes)", {
  skip: peerSkip("curl"),
}, () => {
  it("each caller reaches only its own targets; refusals are logged with caller and target", {
    timeout: 120_000,
  }, async () => {
    const sock = join(dir, "k.sock");
    const { server, agentPort, frontendPort } = await startCliServer(pki, children, [
      "--connect-uds",
      sock,
      "--connect-uds-caller",
      "kube-apiserver",
    ]);
    const registered = waitLine(server, /agent node-1 registered/, "server", "stderr");
    const agent = cli([
      "agent",
      "--server",
      `127.0.0.1:${agentPort}`,
      "--server-name",
      "localhost",
      "--ca",
      pki.ca.certPath,
      "--cert",
      pki.node1Agent.certPath,
      "--key",
      pki.node1Agent.keyPath,
      "--allow-for",
      `kube-apiserver=127.0.0.1:${kubelet}`,
      "--allow-for",
      `system:node:node-1=127.0.0.1:${kubelet}`,
    ]);
    children.push(agent);
    await registered;

    // The CONNECT client with CN system:node:node-1 reaches the kubelet port only.
    const ok = await curlViaFrontend(pki, frontendPort, `http://127.0.0.1:${kubelet}/a`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "kubelet says /a");
    const refusedOther = waitLine(
      agent,
      new RegExp(`dial refused: system:node:node-1 may not reach 127\\.0\\.0\\.1:${other}`),
      "agent",
      "stderr",
    );
    const r1 = await curlViaFrontend(pki, frontendPort, `http://127.0.0.1:${other}/b`);
    assert.notEqual(r1.code, 0);
    assert.match(r1.stderr, /502/);
    await refusedOther;

    // Another client (CN system:node:node-2) is named to the agent and refused everything.
    const refused2 = waitLine(
      agent,
      new RegExp(`dial refused: system:node:node-2 may not reach 127\\.0\\.0\\.1:${kubelet}`),
      "agent",
      "stderr",
    );
    const r2 = await curlViaFrontend(
      pki,
      frontendPort,
      `http://127.0.0.1:${kubelet}/c`,
      pki.client2,
    );
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /502/);
    await refused2;

    // The Unix socket frontend dials as kube-apiserver: the kubelet port, nothing else.
    const viaSock = await viaUds(sock, kubelet, "/d");
    assert.match(viaSock, /^HTTP\/1\.1 200 /);
    assert.match(viaSock, /kubelet says \/d$/);
    const refusedSock = waitLine(
      agent,
      new RegExp(`dial refused: kube-apiserver may not reach 127\\.0\\.0\\.1:${other}`),
      "agent",
      "stderr",
    );
    assert.match(await viaUds(sock, other, "/e"), /^HTTP\/1\.1 502 /);
    await refusedSock;

    process.kill(agent.pid as number, "SIGTERM");
    assert.equal(await exited(agent), 0);
    process.kill(server.pid as number, "SIGTERM");
    assert.equal(await exited(server), 0);
  });

  it("--allow-for without CALLER=PATTERN is a usage error (exit 2)", async () => {
    for (const bad of ["nocaller", "=127.0.0.1:1", "x=", "*=127.0.0.1:1"]) {
      const a = cli([
        "agent",
        "--server",
        "127.0.0.1:1",
        "--ca",
        pki.ca.certPath,
        "--cert",
        pki.node1Agent.certPath,
        "--key",
        pki.node1Agent.keyPath,
        "--allow-for",
        bad,
      ]);
      children.push(a);
      assert.equal(await exited(a), 2, bad);
    }
  });
});
