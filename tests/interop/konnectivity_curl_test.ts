/**
 * Real `curl` through the HTTP CONNECT frontend: plain TCP on 127.0.0.1, mutual
 * TLS (curl's HTTPS proxy with a client certificate), and a Unix socket; error
 * statuses and slowloris limits checked with a raw client.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Channel } from "../../src/channel/types.ts";
import {
  type ConnectFrontend,
  serveConnectFrontend,
} from "../../src/konnectivity/connect_frontend.ts";
import { listenTcp, TcpDialer, type TcpTarget } from "../../src/tcp/mod.ts";
import { listenTls } from "../../src/tls/mod.ts";
import { Cluster } from "../_harness/konnectivity_cluster.ts";
import { peerSkip } from "../_harness/peers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-sS", "--max-time", "20", ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: unknown }).code as number) : 0;
        resolve({ code: typeof code === "number" ? code : -1, stdout, stderr });
      },
    );
  });
}

/** Send `request` raw and read until the head ends; returns the status line and the channel. */
async function raw(target: TcpTarget, request: string): Promise<{ status: number; ch: Channel }> {
  const ch = await new TcpDialer().dial(target);
  const w = ch.writable.getWriter();
  if (request !== "") await w.write(enc.encode(request));
  w.releaseLock();
  const r = ch.readable.getReader();
  let got = "";
  for (let i = 0; i < 1000 && !got.includes("\r\n\r\n"); i++) {
    const x = await r.read();
    if (x.done) break;
    got += dec.decode(x.value);
  }
  r.releaseLock();
  return { status: Number(got.split(" ")[1]), ch };
}

const dir = mkdtempSync(join(tmpdir(), "spokewire-kcurl-"));
let cluster: Cluster;
let http: Server;
let httpPort: number;
const frontends: ConnectFrontend[] = [];
let plainPort: number;

before(async () => {
  cluster = await Cluster.start();
  http = createServer((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`hello from target ${req.url}`);
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  httpPort = (http.address() as { port: number }).port;
  const agent = cluster.agent({ allow: [`127.0.0.1:${httpPort}`] });
  await agent.waitConnected();
  await cluster.server.waitForAgent("node-1");
  const plain = await listenTcp({ host: "127.0.0.1", port: 0 });
  plainPort = Number(plain.addr.slice(plain.addr.lastIndexOf(":") + 1));
  frontends.push(
    serveConnectFrontend(plain, cluster.server, {
      config: { headerTimeoutMs: 300, maxHeaderBytes: 1024 },
    }),
  );
});

after(async () => {
  await Promise.all(frontends.map((f) => f.close()));
  await new Promise<void>((r) => http.close(() => r()));
  http.closeAllConnections?.();
  await cluster.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("curl through the HTTP CONNECT frontend", { skip: peerSkip("curl") }, () => {
  it("plain TCP proxy on 127.0.0.1: curl -p -x", async () => {
    const r = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${plainPort}`,
      `http://127.0.0.1:${httpPort}/a`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from target /a");
  });

  it("mutual TLS proxy: curl --proxy https:// with a client certificate", async () => {
    const p = cluster.pki;
    const l = await listenTls(
      { port: 0 },
      { credentials: { ca: p.ca.cert, cert: p.server.cert, key: p.server.key } },
    );
    frontends.push(serveConnectFrontend(l, cluster.server));
    const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
    const proxy = ["-p", "--proxy", `https://localhost:${port}`, "--proxy-cacert", p.ca.certPath];
    const ok = await curl([
      ...proxy,
      "--proxy-cert",
      p.client.certPath,
      "--proxy-key",
      p.client.keyPath,
      `http://127.0.0.1:${httpPort}/tls`,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "hello from target /tls");
    const noCert = await curl([...proxy, `http://127.0.0.1:${httpPort}/tls`]);
    assert.notEqual(noCert.code, 0, "a client without a certificate is refused");
    assert.equal(noCert.stdout, "");
  });

  it("Unix socket frontend: a raw CONNECT then HTTP through the tunnel", async () => {
    const path = join(dir, "konnectivity.sock");
    const l = await listenTcp({ path });
    frontends.push(serveConnectFrontend(l, cluster.server));
    // curl's --unix-socket sends a plain GET (no CONNECT) even with a proxy, so the
    // Unix-socket path is driven by our own client, as kube-apiserver drives it.
    const { status, ch } = await raw(
      { path },
      `CONNECT 127.0.0.1:${httpPort} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    );
    assert.equal(status, 200);
    const w = ch.writable.getWriter();
    await w.write(enc.encode("GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    w.releaseLock();
    let body = "";
    const rd = ch.readable.getReader();
    for (let i = 0; i < 1000; i++) {
      const x = await rd.read();
      if (x.done) break;
      body += dec.decode(x.value);
    }
    assert.match(body, /hello from target \/raw$/);
  });

  it("502 when the agent refuses the destination", async () => {
    const { status, ch } = await raw(
      { host: "127.0.0.1", port: plainPort },
      "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert.equal(status, 502);
    ch.abort();
    const r = await curl(["-p", "-x", `http://127.0.0.1:${plainPort}`, "http://127.0.0.1:1/"]);
    assert.notEqual(r.code, 0);
  });

  it("503 when no agent is registered", async () => {
    const empty = await Cluster.start();
    const l = await listenTcp({ host: "127.0.0.1", port: 0 });
    const f = serveConnectFrontend(l, empty.server);
    try {
      const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
      const { status, ch } = await raw(
        { host: "127.0.0.1", port },
        `CONNECT 127.0.0.1:${httpPort} HTTP/1.1\r\n\r\n`,
      );
      assert.equal(status, 503);
      ch.abort();
    } finally {
      await f.close();
      await empty.close();
    }
  });

  it("405 for GET, 400 for a bad target, 431 for a huge head, 408 for a slow one", async () => {
    const at = { host: "127.0.0.1", port: plainPort };
    const g = await raw(at, "GET / HTTP/1.1\r\n\r\n");
    assert.equal(g.status, 405);
    g.ch.abort();
    const b = await raw(at, "CONNECT nowhere HTTP/1.1\r\n\r\n");
    assert.equal(b.status, 400);
    b.ch.abort();
    const big = await raw(at, `CONNECT a:1 HTTP/1.1\r\nX: ${"a".repeat(4096)}\r\n\r\n`);
    assert.equal(big.status, 431);
    big.ch.abort();
    const slow = await raw(at, "CONNECT 127.0.0.1:1 HTTP/1.1\r\n");
    assert.equal(slow.status, 408);
    slow.ch.abort();
  });
});
