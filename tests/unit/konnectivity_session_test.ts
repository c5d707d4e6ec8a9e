/**
 * Named behaviours of the Konnectivity session, each one an upstream weakness
 * or a SPEC.md rule, driven deterministically (manual pipes, fake clock).
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { after, describe, it } from "node:test";
import {
  AbortedError,
  ChannelResetError,
  DialError,
  ProtocolError,
  TimeoutError,
} from "../../src/channel/errors.ts";
import type { Channel } from "../../src/channel/types.ts";
import {
  DEFAULT_SESSION_CONFIG,
  decodePacket,
  describePacket,
  encodePacket,
  GoAwayCode,
  type IncomingDial,
  KonnectivitySession,
  memoryPipePair,
  type Packet,
  PacketType,
  parseDialAddress,
  relayDialHandler,
  type TunnelChannel,
  tunnelListener,
  verifySessionConfig,
} from "../../src/konnectivity/mod.ts";
import { TcpDialer } from "../../src/tcp/mod.ts";
import { readAll, writeAll } from "../../src/testing/conformance.ts";
import { FakeClock } from "../_harness/konnectivity_clock.ts";
import { AGENT_ID, memorySessionPair, SERVER_ID } from "../_harness/konnectivity_pairs.ts";

function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Two sessions over manual pipes, recording every packet that crosses. */
function manualWorld(onDial?: (d: IncomingDial) => void | Promise<void>, clock = new FakeClock()) {
  const pipes = memoryPipePair({ manual: true });
  const log: string[] = [];
  for (const [dir, pipe] of [
    ["S->A", pipes.a],
    ["A->S", pipes.b],
  ] as const) {
    const send = pipe.send.bind(pipe);
    pipe.send = (m: Uint8Array) => {
      log.push(`${dir} ${describePacket(decodePacket(m))}`);
      return send(m);
    };
  }
  const config = { keepaliveIntervalMs: 1000, keepaliveTimeoutMs: 500, dialTimeoutMs: 10_000 };
  const server = new KonnectivitySession(pipes.a, {
    peer: AGENT_ID,
    role: "server",
    timers: clock,
    config,
  });
  const agent = new KonnectivitySession(pipes.b, {
    peer: SERVER_ID,
    role: "agent",
    timers: clock,
    config,
    onDial,
  });
  return {
    server,
    agent,
    clock,
    log,
    toAgent: (n?: number) => pipes.a.flush(n),
    toServer: (n?: number) => pipes.b.flush(n),
    kill: () => pipes.kill(),
  };
}

describe("konnectivity session config", () => {
  it("DEFAULT_SESSION_CONFIG verifies, and verifySessionConfig names the bad field", () => {
    assert.deepEqual(verifySessionConfig(), DEFAULT_SESSION_CONFIG);
    for (const [field, value] of [
      ["connectionWindow", 10],
      ["connectionWindow", 2 ** 31],
      ["maxDataPerPacket", 2 * 1024 * 1024],
      ["maxConnections", 0],
      ["keepaliveTimeoutMs", -1],
      ["dialTimeoutMs", 1.5],
      ["maxControlBacklog", 1],
    ] as const) {
      assert.throws(
        () => verifySessionConfig({ [field]: value }),
        (e) => e instanceof RangeError && e.message.startsWith(field),
        `${field}=${value}`,
      );
    }
    assert.throws(
      () => verifySessionConfig({ channel: { readHighWaterMark: 5 } as never }),
      (e) => e instanceof RangeError && e.message.includes("readHighWaterMark"),
    );
  });
});

describe("konnectivity session behaviours", () => {
  it("#404: a DIAL_CLS that crosses a successful DIAL_RSP leaks nothing on either side", async () => {
    let agentSide: Channel | undefined;
    const w = manualWorld((d) => {
      agentSide = d.accept();
    });
    const ac = new AbortController();
    const dialing = w.server.dial("svc:443", { signal: ac.signal });
    w.toAgent(); // DIAL_REQ arrives; the agent accepts and answers
    await settle();
    assert.ok(agentSide, "the agent accepted");
    ac.abort(new Error("caller gave up")); // DIAL_CLS leaves while DIAL_RSP is in flight
    await assert.rejects(dialing, (e) => e instanceof AbortedError);
    for (let i = 0; i < 10; i++) {
      w.toAgent();
      w.toServer();
      await settle();
    }
    assert.equal((await agentSide.closed).kind, "reset");
    for (const s of [w.server, w.agent]) {
      const st = s.stats();
      assert.equal(st.connections, 0, `connections left: ${w.log.join("\n")}`);
      assert.equal(st.pendingDials + st.incomingDials, 0);
    }
    // Exactly one close packet crossed each way.
    assert.equal(w.log.filter((l) => l.startsWith("S->A CLOSE")).length, 1, w.log.join("\n"));
    assert.equal(w.log.filter((l) => l.startsWith("A->S CLOSE")).length, 1, w.log.join("\n"));
    w.server.abort();
    w.agent.abort();
  });

  it("#404: a DIAL_CLS that arrives while the agent is still dialing aborts its signal", async () => {
    let signal: AbortSignal | undefined;
    const w = manualWorld(async (d) => {
      signal = d.signal;
      await new Promise<void>((r) => d.signal.addEventListener("abort", () => r()));
      assert.throws(() => d.accept(), AbortedError);
    });
    const ac = new AbortController();
    const dialing = w.server.dial("slow:1", { signal: ac.signal });
    w.toAgent();
    await settle();
    ac.abort();
    await assert.rejects(dialing, AbortedError);
    w.toAgent(); // DIAL_CLS
    await settle();
    assert.equal(signal?.aborted, true);
    w.toServer(); // DIAL_RSP{error: "dial cancelled"}
    await settle();
    assert.ok(w.log.some((l) => l.includes('DIAL_RSP random=1 error="dial cancelled"')));
    assert.equal(w.server.stats().pendingDials, 0);
    assert.equal(w.agent.stats().incomingDials, 0);
    w.server.abort();
    w.agent.abort();
  });

  it("#126: when the pipe dies, pending dials and open connections fail in the same turn", async () => {
    const p = memorySessionPair();
    p.router.hang.add("pending:1");
    const address = "open:1";
    const [a, b] = await Promise.all([p.server.dial(address), p.router.take(address)]);
    const pending = p.server.dial("pending:1");
    pending.catch(() => {});
    const reading = a.readable.getReader().read();
    p.kill();
    // No timer involved: everything has failed before the next macrotask.
    const outcome = await Promise.race([
      Promise.allSettled([pending, reading, a.closed, b.closed]),
      new Promise<"late">((r) => setImmediate(() => setImmediate(() => r("late")))),
    ]);
    assert.notEqual(outcome, "late");
    const [pd, rd, ca, cb] = outcome as PromiseSettledResult<unknown>[];
    assert.ok(pd.status === "rejected" && pd.reason instanceof DialError, `${JSON.stringify(pd)}`);
    assert.ok(rd.status === "rejected" && rd.reason instanceof ChannelResetError);
    assert.equal((ca as PromiseFulfilledResult<{ kind: string }>).value.kind, "reset");
    assert.equal((cb as PromiseFulfilledResult<{ kind: string }>).value.kind, "reset");
    await assert.rejects(p.server.dial("after:1"), DialError);
  });

  it("keepalive: answered PINGs keep an idle session alive; silence ends it with GO_AWAY{KEEPALIVE_TIMEOUT}", async () => {
    const w = manualWorld();
    // Both ends PING at start (an early RTT sample); answer those first.
    for (let i = 0; i < 2; i++) {
      w.toAgent();
      w.toServer();
      await settle();
    }
    assert.ok(w.server.stats().rttMs !== undefined, "RTT measured from the first PING");
    for (let i = 0; i < 20; i++) {
      w.clock.advance(1000); // PING
      w.toAgent();
      w.toServer();
      await settle();
      w.toAgent();
      w.toServer(); // PONGs
      await settle();
    }
    assert.equal(w.server.state, "open");
    assert.ok(w.log.filter((l) => l.includes("PONG")).length >= 20);
    w.clock.advance(1000 + 500 + 1); // PING out, nothing back
    const info = await w.server.closed;
    assert.ok(info.error instanceof TimeoutError);
    assert.equal(info.goAway?.code, GoAwayCode.KEEPALIVE_TIMEOUT);
    assert.ok(w.log.some((l) => l.startsWith("S->A GO_AWAY code=KEEPALIVE_TIMEOUT")));
    w.agent.abort();
  });

  it("half-close: closeWrite() ends the peer's readable while the other direction goes on", async () => {
    const p = memorySessionPair();
    const [a, b] = await Promise.all([p.server.dial("h:1"), p.router.take("h:1")]);
    await a.closeWrite();
    const r = b.readable.getReader();
    assert.equal((await r.read()).done, true);
    const msg = new TextEncoder().encode("reply after the peer's FIN");
    await writeAll(b, [msg]);
    assert.deepEqual(await readAll(a), msg);
    assert.equal((await a.closed).kind, "closed");
    assert.equal((await b.closed).kind, "closed");
    await p.close();
  });

  it("ids: connection ids are never reused and follow the role's parity; dial ids strictly increase", async () => {
    const w = manualWorld((d) => void d.accept());
    const ids: number[] = [];
    for (let i = 0; i < 30; i++) {
      const dialing = w.server.dial(`x:${i + 1}`);
      w.toAgent();
      await settle();
      w.toServer();
      const ch = (await dialing) as TunnelChannel;
      ids.push(ch.connectID);
      ch.abort();
      w.toAgent();
      await settle();
      w.toServer();
      await settle();
    }
    assert.equal(new Set(ids).size, ids.length);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1]);
    assert.ok(
      ids.every((id) => id % 2 === 1),
      "agent-assigned ids are odd",
    );
    const randoms = w.log
      .filter((l) => l.includes("DIAL_REQ"))
      .map((l) => Number(/random=(\d+)/.exec(l)?.[1]));
    assert.deepEqual(
      randoms,
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.equal(w.server.stats().connections, 0);
    assert.equal(w.agent.stats().connections, 0);
    w.server.abort();
    w.agent.abort();
  });

  it("identity: every tunneled channel reports the session's verified peer", async () => {
    const p = memorySessionPair();
    const [a, b] = await Promise.all([p.server.dial("id:1"), p.router.take("id:1")]);
    assert.equal(a.peer.id, AGENT_ID.id);
    assert.equal(a.peer.scheme, AGENT_ID.scheme);
    assert.equal(b.peer.id, SERVER_ID.id);
    await p.close();
  });

  it("a dial the peer refuses, or that nobody answers, fails typed (DIAL_FAILED, TIMEOUT)", async () => {
    const pipes = memoryPipePair();
    const server = new KonnectivitySession(pipes.a, { peer: AGENT_ID, role: "server" });
    const agent = new KonnectivitySession(pipes.b, { peer: SERVER_ID, role: "agent" }); // no onDial
    await assert.rejects(
      server.dial("x:1"),
      (e) => e instanceof DialError && /accepts no dials/.test(e.message),
    );
    const silent = memoryPipePair({ manual: true });
    const lonely = new KonnectivitySession(silent.a, { peer: AGENT_ID, role: "server" });
    await assert.rejects(lonely.dial("x:1", { timeoutMs: 20 }), TimeoutError);
    server.close();
    agent.close();
    lonely.abort();
  });

  it("DATA beyond the window ends the session with GO_AWAY{FLOW_CONTROL_ERROR}", async () => {
    const pipes = memoryPipePair({ manual: true });
    const sent: Packet[] = [];
    pipes.b.start({ message: (m) => sent.push(decodePacket(m)), closed: () => {} });
    const agent = new KonnectivitySession(pipes.a, {
      peer: SERVER_ID,
      role: "agent",
      config: { connectionWindow: 4096 },
      onDial: (d) => void d.accept(),
    });
    const raw = (p: Packet): void => {
      pipes.b.send(encodePacket(p));
      pipes.b.flush();
    };
    raw({ type: PacketType.DIAL_REQ, protocol: "tcp", address: "a:1", random: 1, window: 4096 });
    await settle();
    pipes.a.flush();
    const rsp = sent.find((p) => p.type === PacketType.DIAL_RSP);
    assert.ok(
      rsp && rsp.type === PacketType.DIAL_RSP && rsp.connectID === 1 && rsp.window === 4096,
    );
    raw({ type: PacketType.DATA, connectID: 1, error: "", data: new Uint8Array(4096) });
    assert.equal(agent.state, "open");
    raw({ type: PacketType.DATA, connectID: 1, error: "", data: new Uint8Array(1) });
    const info = await agent.closed;
    assert.ok(info.error instanceof ProtocolError);
    assert.equal(info.goAway?.code, GoAwayCode.FLOW_CONTROL_ERROR);
    pipes.a.flush();
    assert.equal(sent[sent.length - 1].type, PacketType.GO_AWAY);
  });
});

describe("konnectivity window auto-tuning", () => {
  /** One connection over manual pipes with a 10 ms round trip in fake time. */
  async function run(readPerRound: number): Promise<{ windows: number; rounds: number }> {
    const clock = new FakeClock();
    const pipes = memoryPipePair({ manual: true });
    const config = { connectionWindow: 65536, maxConnectionWindow: 1024 * 1024 };
    let accepted: Channel | undefined;
    const server = new KonnectivitySession(pipes.a, {
      peer: AGENT_ID,
      role: "server",
      config,
      timers: clock,
    });
    const agent = new KonnectivitySession(pipes.b, {
      peer: SERVER_ID,
      role: "agent",
      config,
      timers: clock,
      onDial: (d) => {
        accepted = d.accept();
      },
    });
    // Each direction takes 5 ms: server->agent, then agent->server (RTT 10 ms).
    const hop = async (): Promise<void> => {
      clock.advance(5);
      pipes.a.flush();
      await settle();
      clock.advance(5);
      pipes.b.flush();
      await settle();
    };
    const dialing = server.dial("bulk:1");
    for (let i = 0; i < 4; i++) await hop(); // PINGs, PONGs, DIAL_REQ, DIAL_RSP
    const a = await dialing;
    assert.ok(accepted);
    const total = 4 * 1024 * 1024;
    const w = a.writable.getWriter();
    const writing = (async () => {
      for (let o = 0; o < total; o += 16384) await w.write(new Uint8Array(16384));
    })();
    const r = accepted.readable.getReader();
    let got = 0;
    let peak = 0;
    let rounds = 0;
    for (; rounds < 5000 && got < total; rounds++) {
      await hop();
      // Read what has arrived (never wait: data only moves on the next hop).
      const queued = (): number => (accepted as TunnelChannel).queuedReadBytes;
      for (let n = 0; n < readPerRound && queued() > 0; ) {
        const { value } = await r.read();
        got += value?.byteLength ?? 0;
        n += value?.byteLength ?? 0;
      }
      peak = Math.max(peak, agent.stats().receiveWindows);
    }
    await writing;
    assert.equal(got, total);
    server.abort();
    agent.abort();
    return { windows: peak, rounds };
  }

  it("a reader that keeps up gets its window doubled up to maxConnectionWindow", async () => {
    const fast = await run(Number.POSITIVE_INFINITY);
    assert.equal(fast.windows, 1024 * 1024);
  });

  it("a slow reader keeps the initial window (its buffer does not grow)", async () => {
    const slow = await run(16384);
    assert.equal(slow.windows, 65536);
  });
});

describe("konnectivity session overload", () => {
  it("a control backlog overflow while aborting connections ends the session cleanly, typed", async () => {
    const pipes = memoryPipePair({ manual: true, highWaterMark: 512 });
    const config = { maxControlBacklog: 4096 };
    const server = new KonnectivitySession(pipes.a, { peer: AGENT_ID, role: "server", config });
    const agent = new KonnectivitySession(pipes.b, {
      peer: SERVER_ID,
      role: "agent",
      config,
      onDial: (d) => void d.accept(),
    });
    const chans: Channel[] = [];
    for (let batch = 0; batch < 8; batch++) {
      const dials = Array.from({ length: 50 }, (_, i) => server.dial(`c:${batch}-${i}`));
      for (let i = 0; i < 4; i++) {
        pipes.a.flush();
        await settle();
        pipes.b.flush();
        await settle();
      }
      chans.push(...(await Promise.all(dials)));
    }
    assert.equal(server.state, "open");
    // The agent stops reading: every CLOSE_REQ piles up in the server's pipe.
    for (const ch of chans) assert.doesNotThrow(() => ch.abort(new Error("bye")));
    assert.equal(server.state, "closed", "400 unread CLOSE_REQs must overflow a 4 KiB backlog");
    const info = await server.closed;
    assert.equal(info.goAway?.code, GoAwayCode.OVERLOAD);
    const kinds = new Set((await Promise.all(chans.map((c) => c.closed))).map((c) => c.kind));
    assert.ok(
      [...kinds].every((k) => k === "aborted" || k === "reset"),
      [...kinds].join(),
    );
    assert.equal(server.stats().connections, 0);
    agent.abort();
  });
});

describe("konnectivity tunnelListener", () => {
  it("hands out accepted channels; once closed, dials are refused with DIAL_FAILED", async () => {
    const pipes = memoryPipePair();
    const { onDial, listener } = tunnelListener({ addr: "agent-1" });
    const server = new KonnectivitySession(pipes.a, { peer: AGENT_ID, role: "server" });
    const agent = new KonnectivitySession(pipes.b, { peer: SERVER_ID, role: "agent", onDial });
    const it = listener[Symbol.asyncIterator]();
    const [dialed, accepted] = await Promise.all([server.dial("svc:80"), it.next()]);
    assert.equal(accepted.done, false);
    const msg = new TextEncoder().encode("through the listener");
    const [got] = await Promise.all([readAll(accepted.value as Channel), writeAll(dialed, [msg])]);
    assert.deepEqual(got, msg);
    await listener.close();
    assert.equal((await it.next()).done, true);
    await assert.rejects(
      server.dial("svc:81"),
      (e) => e instanceof DialError && /closed/.test(e.message),
    );
    server.close();
    agent.close();
  });
});

describe("konnectivity relay (agent dial hook)", () => {
  let echo: Server;
  after(() => echo?.close());

  it("parseDialAddress accepts host:port and [v6]:port only", () => {
    assert.deepEqual(parseDialAddress("10.0.0.1:443"), { host: "10.0.0.1", port: 443 });
    assert.deepEqual(parseDialAddress("[::1]:80"), { host: "::1", port: 80 });
    for (const bad of ["x", "x:0", "x:70000", ":80", "a b:1", "::1:80"]) {
      assert.throws(() => parseDialAddress(bad), TypeError, bad);
    }
  });

  it("relayDialHandler dials TCP on the agent side and relays both ways with half-close", async () => {
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
    const port = (echo.address() as { port: number }).port;
    const pipes = memoryPipePair();
    const server = new KonnectivitySession(pipes.a, { peer: AGENT_ID, role: "server" });
    const agent = new KonnectivitySession(pipes.b, {
      peer: SERVER_ID,
      role: "agent",
      onDial: relayDialHandler(new TcpDialer(), { allow: (t) => t.host === "127.0.0.1" }),
    });
    const ch = await server.dial(`127.0.0.1:${port}`);
    const msg = new Uint8Array(300_000).map((_, i) => i & 0xff);
    const [got] = await Promise.all([readAll(ch), writeAll(ch, [msg])]);
    assert.deepEqual(got, msg);
    assert.equal((await ch.closed).kind, "closed");
    await assert.rejects(
      server.dial("10.1.2.3:80"),
      (e) => e instanceof DialError && /not allowed/.test(e.message),
    );
    await assert.rejects(server.dial(`127.0.0.1:1`), DialError);
    server.close();
    agent.close();
  });
});
