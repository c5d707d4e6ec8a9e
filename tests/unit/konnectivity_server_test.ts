import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as tls from "node:tls";
import {
  AuthError,
  createServiceTokenVerifier,
  DialError,
  type DialRefusal,
  generateKeyPair,
  issueServiceToken,
  type ServiceTokenRequest,
  TokenRefusedError,
} from "../../mod.ts";
import type { Channel, Listener } from "../../src/channel/types.ts";
import type { AgentState, KonnectivityAgent } from "../../src/konnectivity/agent.ts";
import { verifyKonnectivityAgentConfig } from "../../src/konnectivity/agent.ts";
import { staticClaims } from "../../src/konnectivity/agent_claims.ts";
import { compileAllowList, parseAgentIdentifiers } from "../../src/konnectivity/agent_routes.ts";
import {
  NoAgentError,
  nodeCertificateAuthorizer,
  serviceTokenAgents,
  verifyKonnectivityServerConfig,
} from "../../src/konnectivity/server.ts";
import type { TcpTarget } from "../../src/tcp/mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { TlsDialer } from "../../src/tls/mod.ts";
import { Cluster } from "../_harness/konnectivity_cluster.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Echo every connection on `listener`. */
function echo(listener: Listener): void {
  void (async () => {
    for await (const ch of listener) ch.readable.pipeTo(ch.writable).catch(() => ch.abort());
  })();
}

async function roundTrip(ch: Channel, text: string): Promise<string> {
  const w = ch.writable.getWriter();
  await w.write(enc.encode(text));
  w.releaseLock();
  const r = ch.readable.getReader();
  let got = "";
  for (let i = 0; i < 1000 && got.length < text.length; i++) {
    const x = await r.read();
    if (x.done) break;
    got += dec.decode(x.value);
  }
  r.releaseLock();
  return got;
}

/** Resolves with the error the agent backs off with. */
function nextBackoff(agent: KonnectivityAgent): Promise<Error | undefined> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no backoff within 10 s")), 10_000);
    const check = (): void => {
      if (agent.state === "backoff" && agent.lastError) {
        clearTimeout(t);
        resolve(agent.lastError);
      } else setTimeout(check, 5);
    };
    check();
  });
}

const pki = makeTestPki();
after(() => pki.cleanup());

describe("konnectivity server config", () => {
  it("verifyKonnectivityServerConfig names the bad field", () => {
    assert.throws(() => verifyKonnectivityServerConfig({ maxAgents: 0 }), /maxAgents/);
    assert.throws(() => verifyKonnectivityServerConfig({ handshakeTimeoutMs: -1 }), RangeError);
  });
  it("verifyKonnectivityAgentConfig names the bad field", () => {
    assert.throws(() => verifyKonnectivityAgentConfig({ jitter: 1.5 }), /jitter/);
    assert.throws(
      () => verifyKonnectivityAgentConfig({ reconnectSpreadMs: -1 }),
      /reconnectSpreadMs/,
    );
    assert.throws(
      () => verifyKonnectivityAgentConfig({ minBackoffMs: 100, maxBackoffMs: 10 }),
      /maxBackoffMs/,
    );
  });
  it("nodeCertificateAuthorizer maps system:node:<name> in system:nodes", () => {
    const p = { scheme: "x509", id: "system:node:n1", fingerprint: "" } as const;
    assert.equal(nodeCertificateAuthorizer({ ...p, groups: ["system:nodes"] }), "n1");
    assert.equal(nodeCertificateAuthorizer({ ...p, groups: ["system:other"] }), undefined);
    assert.equal(
      nodeCertificateAuthorizer({ ...p, id: "admin", groups: ["system:nodes"] }),
      undefined,
    );
  });
  it("allow-list and identifiers parse", () => {
    const allow = compileAllowList(["127.0.0.1:80", "10.0.0.0/8", "*.svc:443", "[::1]:*"]);
    assert.ok(allow({ host: "127.0.0.1", port: 80 }));
    assert.ok(!allow({ host: "127.0.0.1", port: 81 }));
    assert.ok(allow({ host: "10.9.8.7", port: 1 }));
    assert.ok(allow({ host: "api.svc", port: 443 }));
    assert.ok(!allow({ host: "svc", port: 443 }));
    assert.ok(allow({ host: "::1", port: 5 }));
    assert.throws(() => compileAllowList(["10.0.0.0/99"]), RangeError);
    const ids = parseAgentIdentifiers("host=a&cidr=10.0.0.0/8&default-route=true&x=y");
    assert.deepEqual([...ids.hosts], ["a"]);
    assert.equal(ids.defaultRoute, true);
  });
});

describe("konnectivity server with certificate agents", () => {
  let c: Cluster;
  let port: number;
  before(async () => {
    c = await Cluster.start({}, pki);
    const t = await c.target();
    port = t.port;
    echo(t.listener);
  });
  after(() => c.close().catch(() => {}));

  it("dials through a certificate-authenticated agent", async () => {
    const agent = c.agent();
    await agent.waitConnected();
    const info = await c.server.waitForAgent("node-1");
    assert.equal(info.peer.scheme, "x509");
    assert.equal(agent.serverIdentity?.scheme, "x509");
    const ch = await c.server.dial(`127.0.0.1:${port}`);
    assert.equal(ch.peer.id, "system:node:node-1");
    assert.equal(await roundTrip(ch, "hello through the tunnel"), "hello through the tunnel");
    await ch.close();
    await agent.close();
    assert.equal(agent.state, "closed");
  });

  it("refuses a dial outside the agent's allow-list", async () => {
    const agent = c.agent({ allow: ["127.0.0.1:1"] });
    await agent.waitConnected();
    const info = await c.server.waitForAgent("node-1");
    await assert.rejects(c.server.dial(`127.0.0.1:${port}`), { code: "DIAL_FAILED" });
    await agent.close();
    await assert.rejects(
      c.server.waitForAgent("node-1", { newerThan: info.generation, timeoutMs: 50 }),
      { code: "TIMEOUT" },
    );
  });

  it("with no agent, dial fails with NoAgentError", async () => {
    await assert.rejects(c.server.dial(`127.0.0.1:${port}`), (e: unknown) => {
      assert.ok(e instanceof NoAgentError);
      assert.equal((e as NoAgentError).code, "DIAL_FAILED");
      return true;
    });
  });

  it("refuses a client certificate from a foreign CA", async () => {
    const agent = c.agent({
      credentials: { ca: pki.ca.cert, cert: pki.foreignClient.cert, key: pki.foreignClient.key },
    });
    const err = await nextBackoff(agent);
    assert.ok(err);
    assert.notEqual(agent.state, "connected");
    assert.equal(c.server.agents().length, 0);
    await agent.close();
  });

  it("refuses a valid certificate that is not a node (403)", async () => {
    const agent = c.agent({
      credentials: { ca: pki.ca.cert, cert: pki.client2.cert, key: pki.client2.key },
    });
    const err = await nextBackoff(agent);
    assert.equal((err as { code?: string }).code, "AUTH_FAILED");
    assert.equal(c.server.agents().length, 0);
    await agent.close();
  });

  it("refuses an agent id that does not match the certificate", async () => {
    const agent = c.agent({ agentId: "node-9" });
    const err = await nextBackoff(agent);
    assert.equal((err as { code?: string }).code, "AUTH_FAILED");
    await agent.close();
  });

  it("agent killed mid-transfer: the channel errors and pending dials fail at once", async () => {
    let hang: ((signal: AbortSignal) => void) | undefined;
    const hanging = new Promise<void>((r) => {
      hang = () => r();
    });
    const agent = c.agent({
      allow: ["*"],
      dialer: {
        dial: async (t: TcpTarget, o?: { signal?: AbortSignal }) => {
          if ("port" in t && t.port === 9) {
            hang?.(o?.signal as AbortSignal);
            await new Promise((_, reject) =>
              o?.signal?.addEventListener("abort", () => reject(new Error("cancelled"))),
            );
          }
          const { TcpDialer } = await import("../../src/tcp/mod.ts");
          return new TcpDialer().dial(t, o);
        },
      },
    });
    await agent.waitConnected();
    await c.server.waitForAgent("node-1");
    const ch = await c.server.dial(`127.0.0.1:${port}`);
    assert.equal(await roundTrip(ch, "before"), "before");
    const pending = c.server.dial("127.0.0.1:9");
    await hanging;
    const t0 = performance.now();
    agent.dropConnection();
    await assert.rejects(pending, { code: "DIAL_FAILED" });
    const info = await ch.closed;
    assert.notEqual(info.kind, "closed");
    assert.equal(info.error?.code, "CHANNEL_RESET");
    assert.ok(performance.now() - t0 < 5_000, "errors well before any keepalive timeout");
    // And it comes back.
    await agent.waitConnected();
    const again = await c.server.dial(`127.0.0.1:${port}`);
    assert.equal(await roundTrip(again, "after"), "after");
    await again.close();
    await agent.close();
  });

  it("a restarted agent re-registers and replaces the old one", async () => {
    const a1 = c.agent();
    await a1.waitConnected();
    const first = await c.server.waitForAgent("node-1");
    const ch = await c.server.dial(`127.0.0.1:${port}`);
    const a2 = c.agent();
    await a2.waitConnected();
    const second = await c.server.waitForAgent("node-1", { newerThan: first.generation });
    assert.ok(second.generation > first.generation);
    assert.equal(c.server.agents().length, 1, "no duplicate backends");
    const info = await ch.closed;
    assert.equal(info.error?.code, "CHANNEL_RESET");
    await a1.close();
    const ch2 = await c.server.dial(`127.0.0.1:${port}`);
    assert.equal(await roundTrip(ch2, "x"), "x");
    await ch2.close();
    await a2.close();
  });

  it("a stalled upgrade request is cut after handshakeTimeoutMs", async () => {
    const c2 = await Cluster.start({ config: { handshakeTimeoutMs: 500 } }, pki);
    try {
      const dialer = new TlsDialer({
        credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
      });
      const ch = await dialer.dial({ host: "127.0.0.1", port: c2.server.port });
      const r = ch.readable.getReader();
      const t0 = performance.now();
      await r.read().then(
        (x) => assert.ok(x.done || x.value),
        () => {},
      );
      assert.ok(performance.now() - t0 < 5_000);
      ch.abort();
    } finally {
      await c2.server.close();
    }
  });

  it("an oversized upgrade head gets 431", async () => {
    const c2 = await Cluster.start({ config: { maxHeaderBytes: 1024 } }, pki);
    try {
      const dialer = new TlsDialer({
        credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
      });
      const ch = await dialer.dial({ host: "127.0.0.1", port: c2.server.port });
      const w = ch.writable.getWriter();
      await w.write(enc.encode(`GET / HTTP/1.1\r\nX-Pad: ${"a".repeat(2048)}\r\n\r\n`));
      const r = ch.readable.getReader();
      let got = "";
      for (let i = 0; i < 100; i++) {
        const x = await r.read();
        if (x.done) break;
        got += dec.decode(x.value);
      }
      assert.match(got, /^HTTP\/1\.1 431 /);
      ch.abort();
    } finally {
      await c2.server.close();
    }
  });
});

describe("konnectivity server with token agents", () => {
  let c: Cluster;
  let port: number;
  const tokens = new Map([
    ["agent-a", "token-a-0123456789"],
    ["agent-b", "token-b-0123456789"],
  ]);
  before(async () => {
    c = await Cluster.start(
      {
        agentToken: (id) => tokens.get(id),
        // What each token agent may announce (a token carries no addresses of its own).
        claimPolicy: staticClaims({
          "agent-a": { hosts: ["127.0.0.1"] },
          "agent-b": { cidrs: ["10.0.0.0/8"], defaultRoute: true },
        }),
      },
      pki,
    );
    const t = await c.target();
    port = t.port;
    echo(t.listener);
  });
  after(() => c.close().catch(() => {}));

  const tokenAgent = (id: string, token: string, extra = {}): KonnectivityAgent =>
    c.agent({
      credentials: { ca: pki.ca.cert },
      agentId: id,
      token: () => token,
      allow: ["127.0.0.1:*", "localhost:*"],
      ...extra,
    });

  it("a wrong token is refused with AUTH_FAILED", async () => {
    const states: AgentState[] = [];
    const agent = tokenAgent("agent-a", "wrong", {
      onStateChange: (s: AgentState) => states.push(s),
    });
    const err = await nextBackoff(agent);
    assert.equal((err as { code?: string }).code, "AUTH_FAILED");
    assert.equal(c.server.agents().length, 0);
    assert.ok(!states.includes("connected"));
    await agent.close();
  });

  it("an unknown agent id is refused", async () => {
    const agent = tokenAgent("agent-z", "token-a-0123456789");
    const err = await nextBackoff(agent);
    assert.equal((err as { code?: string }).code, "AUTH_FAILED");
    await agent.close();
  });

  it("selects the agent by destination host, else the default route", async () => {
    const a = tokenAgent("agent-a", "token-a-0123456789", {
      identifiers: { hosts: ["127.0.0.1"], cidrs: [], defaultRoute: false },
    });
    const b = tokenAgent("agent-b", "token-b-0123456789", {
      identifiers: { hosts: [], cidrs: ["10.0.0.0/8"], defaultRoute: true },
    });
    await Promise.all([a.waitConnected(), b.waitConnected()]);
    await c.server.waitForAgent("agent-a");
    await c.server.waitForAgent("agent-b");
    for (let i = 0; i < 5; i++) {
      const ch = await c.server.dial(`127.0.0.1:${port}`);
      assert.equal(ch.peer.id, "agent-a");
      assert.equal(ch.peer.scheme, "token");
      await ch.close();
      const d = await c.server.dial(`localhost:${port}`);
      assert.equal(d.peer.id, "agent-b");
      assert.equal(await roundTrip(d, "via b"), "via b");
      await d.close();
    }
    await Promise.all([a.close(), b.close()]);
  });

  it("maxAgents refuses one agent too many", async () => {
    const c2 = await Cluster.start(
      { agentToken: (id) => tokens.get(id), config: { maxAgents: 1 } },
      pki,
    );
    try {
      const mk = (id: string) =>
        c2.agent({ credentials: { ca: pki.ca.cert }, agentId: id, token: () => tokens.get(id)! });
      const a = mk("agent-a");
      await a.waitConnected();
      const b = mk("agent-b");
      const err = await nextBackoff(b);
      assert.equal((err as { code?: string }).code, "DIAL_FAILED");
      assert.equal(c2.server.agents().length, 1);
    } finally {
      await c2.close().catch(() => {});
    }
  });
});

describe("konnectivity server with verified agent tokens", () => {
  const ISS = "https://cluster.example";
  const AUD = "system:konnectivity-server";
  let keys: CryptoKeyPair;
  before(async () => {
    keys = await generateKeyPair("ed25519");
  });
  const token = (node: string, over: Partial<ServiceTokenRequest> = {}) =>
    issueServiceToken(keys.privateKey, { issuer: ISS, audience: AUD, node, ...over });

  it("serviceTokenAgents: the token's node is the agent; refusals carry their reason", async () => {
    const warnings: string[] = [];
    const c = await Cluster.start(
      {
        verifyAgentToken: serviceTokenAgents(
          await createServiceTokenVerifier({ keys: [keys.publicKey], issuer: ISS, audience: AUD }),
        ),
        logger: { info: () => {}, warn: (m) => warnings.push(m) },
      },
      pki,
    );
    try {
      const t = await c.target();
      echo(t.listener);
      const mk = (id: string, tok: string) =>
        c.agent({
          credentials: { ca: pki.ca.cert },
          agentId: id,
          token: () => tok,
          allow: ["127.0.0.1:*"],
        });
      for (const [reason, id, tok] of [
        ["wrong-node", "node-2", await token("node-1")],
        ["wrong-audience", "node-1", await token("node-1", { audience: "kubelet" })],
        ["expired", "node-1", await token("node-1", { now: () => Date.now() - 7_200_000 })],
      ] as const) {
        const agent = mk(id, tok);
        const err = await nextBackoff(agent);
        assert.ok(err instanceof AuthError, String(err));
        assert.match(err.message, new RegExp(`HTTP 401\\): token refused \\(${reason}\\)`));
        assert.ok(
          warnings.some((w) => w.includes(`token refused (${reason})`)),
          warnings.join("\n"),
        );
        await agent.close();
      }
      assert.equal(c.server.agents().length, 0);
      const good = mk("node-1", await token("node-1"));
      await good.waitConnected();
      await c.server.waitForAgent("node-1");
      const info = c.server.agents()[0];
      assert.equal(info.id, "node-1");
      assert.equal(info.peer.scheme, "token");
      assert.equal((info.peer.details?.claims as { node?: string } | undefined)?.node, "node-1");
      const ch = await c.server.dial(`127.0.0.1:${t.port}`);
      assert.equal(ch.peer.id, "node-1");
      assert.equal(await roundTrip(ch, "via token"), "via token");
      await ch.close();
      await good.close();
    } finally {
      await c.close().catch(() => {});
    }
  });

  it("a verifier hook of our own (TokenReview-style): groups, refusal, failure", async () => {
    let mode: "ok" | "refuse" | "fail" = "refuse";
    const seen: (string | undefined)[] = [];
    const c = await Cluster.start(
      {
        verifyAgentToken: (tok, agentId) => {
          seen.push(agentId);
          if (mode === "fail") throw new Error("TokenReview unreachable");
          if (mode === "refuse" || tok !== "opaque-review-token") {
            throw new TokenRefusedError("refused", "TokenReview: authenticated=false");
          }
          return { agentId: "node-7", groups: ["system:nodes"] };
        },
      },
      pki,
    );
    try {
      const mk = () =>
        c.agent({
          credentials: { ca: pki.ca.cert },
          agentId: "node-7",
          token: () => "opaque-review-token",
          allow: ["127.0.0.1:*"],
        });
      const a = mk();
      const err = await nextBackoff(a);
      assert.ok(err instanceof AuthError);
      assert.match(err.message, /token refused \(refused\): TokenReview: authenticated=false/);
      await a.close();
      // A verifier that fails (not a refusal) drops the connection without an answer.
      mode = "fail";
      const b = mk();
      const err2 = await nextBackoff(b);
      assert.ok(!(err2 instanceof AuthError), String(err2));
      assert.equal(c.server.agents().length, 0);
      await b.close();
      mode = "ok";
      const d = mk();
      await d.waitConnected();
      await c.server.waitForAgent("node-7");
      assert.deepEqual(c.server.agents()[0].peer.groups, ["system:nodes"]);
      assert.ok(seen.every((s) => s === "node-7"));
      await d.close();
    } finally {
      await c.close().catch(() => {});
    }
  });

  it("agentToken and verifyAgentToken together are a RangeError", async () => {
    await assert.rejects(
      Cluster.start({ agentToken: () => "x", verifyAgentToken: () => ({ agentId: "a" }) }, pki),
      RangeError,
    );
  });
});

describe("konnectivity agent: allow-list per caller", () => {
  it("server.dial's caller reaches the agent; its own list, else '*'; refusals counted", async () => {
    const c = await Cluster.start({}, pki);
    try {
      const t = await c.target();
      echo(t.listener);
      const refusals: DialRefusal[] = [];
      const agent = c.agent({
        credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
        allow: { "kube-apiserver": [`127.0.0.1:${t.port}`], "*": ["127.0.0.1:1"] },
        onDialRefused: (r) => refusals.push(r),
      });
      await agent.waitConnected();
      await c.server.waitForAgent("node-1");
      const ch = await c.server.dial(`127.0.0.1:${t.port}`, { caller: "kube-apiserver" });
      assert.equal(await roundTrip(ch, "kubelet"), "kubelet");
      await ch.close();
      await assert.rejects(c.server.dial(`127.0.0.1:${t.port}`, { caller: "metrics" }), (e) => {
        assert.ok(e instanceof DialError);
        assert.match((e as Error).message, /is not allowed for "metrics"/);
        return true;
      });
      await assert.rejects(c.server.dial(`127.0.0.1:${t.port}`), /an anonymous caller/);
      await assert.rejects(c.server.dial("127.0.0.1:2", { caller: "kube-apiserver" }), DialError);
      assert.deepEqual(agent.refusedDials, { metrics: 1, "": 1, "kube-apiserver": 1 });
      assert.deepEqual(refusals, [
        { caller: "metrics", address: `127.0.0.1:${t.port}` },
        { address: `127.0.0.1:${t.port}` },
        { caller: "kube-apiserver", address: "127.0.0.1:2" },
      ]);
      await agent.close();
    } finally {
      await c.close().catch(() => {});
    }
  });

  it("a plain list serves every caller alike; a bad map is refused at construction", async () => {
    const c = await Cluster.start({}, pki);
    try {
      const t = await c.target();
      echo(t.listener);
      const agent = c.agent({
        credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
        allow: [`127.0.0.1:${t.port}`],
      });
      await agent.waitConnected();
      await c.server.waitForAgent("node-1");
      for (const caller of [undefined, "a", "b"]) {
        const ch = await c.server.dial(`127.0.0.1:${t.port}`, caller ? { caller } : {});
        assert.equal(await roundTrip(ch, "x"), "x");
        await ch.close();
      }
      assert.deepEqual(agent.refusedDials, {});
      await agent.close();
      assert.throws(
        () =>
          c.agent({
            credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
            allow: { a: "127.0.0.1:1" as unknown as string[] },
          }),
        TypeError,
      );
      assert.throws(
        () =>
          c.agent({
            credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
            allow: { a: ["not a pattern:99999"] },
          }),
        RangeError,
      );
    } finally {
      await c.close().catch(() => {});
    }
  });
});

describe("konnectivity server admission: agents over the limit wait, not reset", () => {
  it("30 agents at once through 2 upgrade slots all register, nothing refused", {
    timeout: 60_000,
  }, async () => {
    let n = 0;
    const c = await Cluster.start(
      {
        config: { maxPendingHandshakes: 2 },
        authorizeCertificate: () => `node-${n++}`,
      },
      pki,
    );
    try {
      const agents = Array.from({ length: 30 }, () => c.agent({ allow: ["127.0.0.1:1"] }));
      await Promise.all(agents.map((a) => a.waitConnected({ timeoutMs: 30_000 })));
      assert.equal(c.server.agents().length, 30);
      assert.deepEqual(c.server.refusals, {});
      for (const a of agents) assert.equal(a.lastError, undefined, String(a.lastError));
    } finally {
      await c.close().catch(() => {});
    }
  });

  it("past maxWaitingAgents a verified agent is reset, logged and counted; it retries in", {
    timeout: 60_000,
  }, async () => {
    const warns: string[] = [];
    const c = await Cluster.start(
      {
        config: { maxPendingHandshakes: 1, maxWaitingAgents: 1, handshakeTimeoutMs: 1500 },
        logger: { info: () => {}, warn: (m) => warns.push(m) },
      },
      pki,
    );
    const raws: tls.TLSSocket[] = [];
    const rawTls = () =>
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({
          host: "127.0.0.1",
          port: c.server.port,
          servername: "localhost",
          ca: pki.ca.cert,
          cert: pki.client.cert,
          key: pki.client.key,
        });
        s.on("error", () => {});
        s.once("secureConnect", () => resolve(s));
        s.once("close", () => reject(new Error("closed before the handshake")));
        raws.push(s);
      });
    try {
      // A takes the only upgrade slot and says nothing; B waits in the queue; C overflows.
      await rawTls();
      await new Promise((r) => setTimeout(r, 200));
      await rawTls();
      await new Promise((r) => setTimeout(r, 200));
      const cSock = await rawTls();
      const closed = new Promise((r) => cSock.once("close", r));
      await closed;
      const end = Date.now() + 5000;
      while ((c.server.refusals["backlog-full"] ?? 0) < 1 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(c.server.refusals["backlog-full"], 1);
      assert.ok(
        warns.some((w) => /reset: 1 verified agents already waiting \(maxWaitingAgents\)/.test(w)),
        warns.join("\n"),
      );
      // A times out of its slot (1.5 s); a real agent then gets in.
      const agent = c.agent({ allow: ["127.0.0.1:1"] });
      await agent.waitConnected({ timeoutMs: 20_000 });
      assert.ok((c.server.refusals["handshake-failed"] ?? 0) >= 1);
    } finally {
      for (const s of raws) s.destroy();
      await c.close().catch(() => {});
    }
  });
});
