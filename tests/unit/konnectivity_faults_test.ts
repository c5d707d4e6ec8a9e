/**
 * Fault checklist, section D (cases 28, 29, 34, 35, 37, 38) against the Konnectivity
 * session, its codec and its `ws` pipe. A raw peer (a manual in-memory pipe end that
 * the test writes encoded packets into) plays the misbehaving side; time is a fake clock.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, describe, it } from "node:test";
import WebSocket, { WebSocketServer } from "ws";
import {
  AbortedError,
  ChannelResetError,
  DialError,
  ProtocolError,
  TimeoutError,
} from "../../src/channel/errors.ts";
import type { Channel } from "../../src/channel/types.ts";
import {
  decodePacket,
  encodePacket,
  GoAwayCode,
  type IncomingDial,
  KONNECTIVITY_MAX_WINDOW,
  KonnectivitySession,
  memoryPipePair,
  type Packet,
  PacketType,
  type SessionConfig,
  type SessionRole,
  type TunnelChannel,
  wsPipe,
} from "../../src/konnectivity/mod.ts";
import { DialBusyError } from "../../src/konnectivity/session.ts";
import { FakeClock } from "../_harness/konnectivity_clock.ts";
import { AGENT_ID, SERVER_ID } from "../_harness/konnectivity_pairs.ts";

function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Wait (bounded in turns) until `cond` holds. */
async function until(cond: () => boolean, what: string, turns = 200): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return;
    await settle();
  }
  assert.fail(`never happened: ${what}`);
}

const FAST: Partial<SessionConfig> = {
  connectionWindow: 4096,
  keepaliveIntervalMs: 60_000,
  keepaliveTimeoutMs: 60_000,
  dialTimeoutMs: 10_000,
  dialHandlerTimeoutMs: 10_000,
};

/** One session under test, and a raw peer on the other end of a manual pipe. */
function rawPeer(
  role: SessionRole,
  opts: {
    config?: Partial<SessionConfig>;
    onDial?: (d: IncomingDial) => void | Promise<void>;
  } = {},
) {
  const clock = new FakeClock();
  const pipes = memoryPipePair({ manual: true });
  const got: Packet[] = [];
  let pipeClosed = false;
  pipes.b.start({
    message: (m) => got.push(decodePacket(m)),
    closed: () => {
      pipeClosed = true;
    },
  });
  const s = new KonnectivitySession(pipes.a, {
    peer: role === "agent" ? SERVER_ID : AGENT_ID,
    role,
    timers: clock,
    config: { ...FAST, ...opts.config },
    onDial: opts.onDial,
  });
  return {
    s,
    clock,
    got,
    pipeClosed: () => pipeClosed,
    /** Deliver raw packets (or bytes) to the session now. */
    send(...ps: Array<Packet | Uint8Array>): void {
      for (const p of ps) pipes.b.send(p instanceof Uint8Array ? p : encodePacket(p));
      pipes.b.flush();
    },
    /** Everything the session sent so far. */
    recv(): Packet[] {
      pipes.a.flush();
      return got;
    },
    last(type: number): Packet | undefined {
      pipes.a.flush();
      return got.filter((p) => p.type === type).at(-1);
    },
  };
}

type Raw = ReturnType<typeof rawPeer>;

/** An agent-role session whose dial handler accepts everything and records the channels. */
function agentWithChannels(config: Partial<SessionConfig> = {}) {
  const channels: TunnelChannel[] = [];
  const raw = rawPeer("agent", {
    config,
    onDial: (d) => {
      channels.push(d.accept() as TunnelChannel);
    },
  });
  const open = async (random: number, window = 4096): Promise<TunnelChannel> => {
    const before = channels.length;
    raw.send({
      type: PacketType.DIAL_REQ,
      protocol: "tcp",
      address: `a:${random}`,
      random,
      window,
    });
    await until(() => channels.length > before, `accept of dial ${random}`);
    const rsp = raw.last(PacketType.DIAL_RSP);
    assert.ok(rsp && rsp.type === PacketType.DIAL_RSP && rsp.random === random && rsp.connectID);
    return channels[channels.length - 1];
  };
  return { ...raw, channels, open };
}

/** A server-role session that dialed once; the raw peer answered with connection `id`. */
async function serverWithDial(config: Partial<SessionConfig> = {}, id = 1) {
  const raw = rawPeer("server", { config });
  const dialing = raw.s.dial("svc:1");
  const req = raw.last(PacketType.DIAL_REQ);
  assert.ok(req && req.type === PacketType.DIAL_REQ);
  raw.send({
    type: PacketType.DIAL_RSP,
    error: "",
    connectID: id,
    random: req.random,
    window: 4096,
  });
  const ch = (await dialing) as TunnelChannel;
  return { ...raw, ch };
}

async function goneAway(raw: Raw, code: number): Promise<void> {
  const info = await raw.s.closed;
  assert.ok(info.error instanceof ProtocolError, `session error: ${info.error}`);
  assert.equal(info.goAway?.code, code, info.error.message);
  assert.equal(info.goAway?.fromPeer, false);
  const last = raw.recv().at(-1);
  assert.equal(last?.type, PacketType.GO_AWAY, "the session's last packet is its GO_AWAY");
  assert.equal(raw.s.stats().connections, 0);
  assert.equal(raw.s.stats().pendingDials, 0);
}

// ---- 28: oversized lengths ----------------------------------------------------------

describe("checklist 28: oversized frame or message lengths", () => {
  it("codec: a length field claiming 2^62 bytes is a ProtocolError (no allocation: views only)", () => {
    // DATA packet whose payload length varint says 2^62.
    const huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
    const msg = new Uint8Array([0x08, PacketType.DATA, 0x22, ...huge, 0x08, 0x01]);
    assert.throws(() => decodePacket(msg), ProtocolError);
    // ... and inside the payload: DATA.data claims 2^62 bytes.
    const inner = new Uint8Array([0x08, PacketType.DATA, 0x22, 12, 0x08, 0x01, 0x1a, ...huge]);
    assert.throws(() => decodePacket(inner), ProtocolError);
  });

  it("session: a message one byte over maxMessageSize gets GO_AWAY{PROTOCOL_ERROR}", async () => {
    const raw = rawPeer("agent", { config: { maxMessageSize: 4096, maxDataPerPacket: 1024 } });
    const pad = new Uint8Array(4097);
    pad.set(encodePacket({ type: PacketType.PING, opaque: 1 }));
    raw.send(pad);
    await goneAway(raw, GoAwayCode.PROTOCOL_ERROR);
  });
});

// ---- 28/29 over ws: the pipe takes its limits from the session -----------------------

describe("checklist 28/29: the ws pipe enforces the session's limits", () => {
  // Deliberately permissive server options (ws default maxPayload 100 MiB, no fragment
  // limit): the session's maxMessageSize must still bound what the socket buffers.
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxFragments: 0 });
  const listening = new Promise<void>((r) => wss.once("listening", () => r()));
  after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
  });

  async function wsSession(config: Partial<SessionConfig>) {
    await listening;
    const port = (wss.address() as { port: number }).port;
    const accepted = new Promise<WebSocket>((r) => wss.once("connection", (ws) => r(ws)));
    const client = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise<void>((resolve, reject) => {
      client.once("open", () => resolve());
      client.once("error", reject);
    });
    client.on("error", () => {}); // the server may cut us off mid-send
    const closeCode = new Promise<number>((r) => client.once("close", (code) => r(code)));
    const server = await accepted;
    const s = new KonnectivitySession(wsPipe(server), {
      peer: AGENT_ID,
      role: "server",
      config: { keepaliveIntervalMs: 60_000, keepaliveTimeoutMs: 60_000, ...config },
    });
    return { client, s, closeCode };
  }

  it("a message over maxMessageSize is refused by the WebSocket with 1009, typed", async () => {
    const { client, s, closeCode } = await wsSession({
      maxMessageSize: 64 * 1024,
      maxDataPerPacket: 16 * 1024,
    });
    client.send(new Uint8Array(256 * 1024), { binary: true });
    // Without the limit on the socket, ws would buffer the whole message and the session
    // would answer GO_AWAY and a normal close (1000).
    assert.equal(await closeCode, 1009);
    const info = await s.closed;
    assert.ok(info.error instanceof ProtocolError, `${info.error}`);
  });

  // Checklist 27: framing violations are ws's to detect; the pipe must turn them into a
  // typed end of the session (and ws closes with 1002).
  const MASK = [1, 2, 3, 4];
  for (const [what, frame, code] of [
    ["RSV1 set without an extension", [0xc2, 0x80, ...MASK], 1002],
    ["a reserved opcode", [0x83, 0x80, ...MASK], 1002],
    ["a fragmented control frame", [0x09, 0x80, ...MASK], 1002],
    ["a control frame over 125 bytes", [0x89, 0xfe, 0x00, 0x7e, ...MASK], 1002],
    ["an unmasked client frame", [0x82, 0x00], 1002],
    ["a continuation without a start", [0x80, 0x80, ...MASK], 1002],
    ["a 1-byte close payload", [0x88, 0x81, ...MASK, 0x03 ^ 1], 1002],
    ["invalid UTF-8 in a text frame", [0x81, 0x81, ...MASK, 0xff ^ 1], 1007],
    ["an invalid close code (999)", [0x88, 0x82, ...MASK, 0x03 ^ 1, 0xe7 ^ 2], 1002],
  ] as const) {
    it(`27: ${what} fails the connection with ${code}, typed`, async () => {
      const { client, s, closeCode } = await wsSession({});
      const socket = (client as unknown as { _socket: { write(b: Uint8Array): void } })._socket;
      socket.write(new Uint8Array(frame));
      assert.equal(await closeCode, code);
      const info = await s.closed;
      assert.ok(info.error instanceof ProtocolError, `${info.error}`);
    });
  }

  it("a frame header claiming 2^63 bytes is refused before any payload, typed", async () => {
    const { client, s, closeCode } = await wsSession({});
    const socket = (client as unknown as { _socket: { write(b: Uint8Array): void } })._socket;
    // FIN + binary, masked, 64-bit length 2^63, mask key; no payload follows.
    socket.write(new Uint8Array([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]));
    assert.equal(await closeCode, 1009);
    const info = await s.closed;
    assert.ok(info.error instanceof ProtocolError, `${info.error}`);
  });

  it("a flood of 1-byte fragments that never completes is cut off by count, typed", async () => {
    const { client, s, closeCode } = await wsSession({ maxMessageSize: 1024 * 1024 });
    const one = new Uint8Array(1);
    // 20 000 bytes stay under maxMessageSize: only a fragment-count limit stops this.
    for (let i = 0; i < 20_000; i++) client.send(one, { binary: true, fin: false });
    // Complete the message, so that a pipe without a count limit ends the test too
    // (GO_AWAY for a garbage packet, then close code 1000) instead of hanging.
    client.send(one, { binary: true, fin: true });
    const code = await closeCode;
    assert.ok(code === 1008 || code === 1009, `close code ${code}`);
    const info = await s.closed;
    assert.ok(info.error instanceof ProtocolError, `${info.error}`);
  });
});

// ---- 29: a flood of tiny DATA packets ------------------------------------------------

describe("checklist 29: tiny DATA packets cannot multiply memory beyond the window", () => {
  it("65 536 one-byte DATA packets to a stalled reader: the window holds, chunks are coalesced", async () => {
    const window = 64 * 1024;
    const a = agentWithChannels({ connectionWindow: window, maxConnectionWindow: window });
    const ch = await a.open(1, window);
    const one = encodePacket({
      type: PacketType.DATA,
      connectID: ch.connectID,
      error: "",
      data: new Uint8Array([7]),
    });
    for (let i = 0; i < window; i++) a.send(one);
    assert.equal(a.s.state, "open");
    assert.equal(a.s.stats().bufferedReceiveBytes, window);
    // One byte more than the window is a flow-control violation, whatever the chunking.
    let chunks = 0;
    let bytes = 0;
    const pinned = new Set<ArrayBufferLike>();
    const r = ch.readable.getReader();
    while (bytes < window && chunks <= window) {
      const { value, done } = await r.read();
      if (done) break;
      chunks++;
      bytes += value.byteLength;
      pinned.add(value.buffer);
      assert.ok(value.every((b) => b === 7));
    }
    assert.equal(bytes, window);
    // Per-chunk overhead (an object, a queue entry: ~100-200 bytes each) would be 100x the
    // payload for 1-byte chunks; coalescing keeps the chunk count near bytes / 1 KiB.
    assert.ok(chunks <= window / 1024 + 4, `${chunks} chunks for ${window} bytes`);
    let retained = 0;
    for (const b of pinned) retained += b.byteLength;
    assert.ok(retained <= 2 * window, `${retained} bytes retained for ${window} bytes of data`);
    a.s.close();
  });

  it("empty DATA packets queue nothing (they would cost memory and no window)", async () => {
    const a = agentWithChannels();
    const ch = await a.open(1);
    const empty = encodePacket({
      type: PacketType.DATA,
      connectID: ch.connectID,
      error: "",
      data: new Uint8Array(0),
    });
    for (let i = 0; i < 20_000; i++) a.send(empty);
    a.send({
      type: PacketType.DATA,
      connectID: ch.connectID,
      error: "",
      data: new Uint8Array([5]),
    });
    assert.equal(a.s.state, "open");
    const r = ch.readable.getReader();
    let reads = 0;
    let value: Uint8Array | undefined;
    while (reads < 20_002 && !value?.byteLength) {
      value = (await r.read()).value;
      reads++;
    }
    assert.deepEqual(value, new Uint8Array([5]));
    assert.equal(reads, 1, "no empty chunk was queued ahead of the data");
    a.s.close();
  });

  it("a 1-byte DATA padded to 60 KiB with an unknown field does not pin the padding", async () => {
    const a = agentWithChannels({ connectionWindow: 4096 });
    const ch = await a.open(1);
    const r = ch.readable.getReader();
    const first = r.read();
    const pad = 60 * 1024;
    for (let i = 0; i < 200; i++) {
      const data = encodePacket({
        type: PacketType.DATA,
        connectID: ch.connectID,
        error: "",
        data: new Uint8Array([i & 0xff]),
      });
      // Append an unknown field 15 (length-delimited) of `pad` bytes to the DATA payload.
      const sub = data.subarray(3 + (data[3] & 0x80 ? 2 : 1));
      const extra = [0x7a, 0x80 | (pad & 0x7f), 0x80 | ((pad >> 7) & 0x7f), pad >> 14];
      const subLen = sub.length + extra.length + pad;
      const msg = new Uint8Array(3 + 3 + subLen);
      msg.set([
        0x08,
        PacketType.DATA,
        0x22,
        0x80 | (subLen & 0x7f),
        0x80 | ((subLen >> 7) & 0x7f),
        subLen >> 14,
      ]);
      msg.set(sub, 6);
      msg.set(extra, 6 + sub.length);
      assert.equal(decodePacket(msg).type, PacketType.DATA);
      a.send(msg);
    }
    assert.equal(a.s.state, "open");
    let retained = 0;
    let bytes = 0;
    const seen = new Set<ArrayBufferLike>();
    const take = (v: Uint8Array): void => {
      bytes += v.byteLength;
      if (!seen.has(v.buffer)) retained += v.buffer.byteLength;
      seen.add(v.buffer);
    };
    take((await first).value as Uint8Array);
    for (let i = 0; i < 200 && bytes < 200; i++) {
      const { value, done } = await r.read();
      if (done) break;
      take(value);
    }
    assert.equal(bytes, 200);
    // Without copying, each byte would keep its 60 KiB message alive (12 MiB for 200 bytes).
    assert.ok(retained <= 64 * 1024, `${retained} bytes retained for 200 bytes of data`);
    a.s.close();
  });
});

// ---- 34: dials that never complete ---------------------------------------------------

/** A server and an agent over an auto-delivering memory pipe, on one fake clock. */
function pair(onDial: (d: IncomingDial) => void | Promise<void>, config: Partial<SessionConfig>) {
  const clock = new FakeClock();
  const pipes = memoryPipePair();
  const server = new KonnectivitySession(pipes.a, {
    peer: AGENT_ID,
    role: "server",
    timers: clock,
    config: { ...FAST, ...config },
  });
  const agent = new KonnectivitySession(pipes.b, {
    peer: SERVER_ID,
    role: "agent",
    timers: clock,
    config: { ...FAST, ...config },
    onDial,
  });
  const idle = (): boolean => {
    const a = server.stats();
    const b = agent.stats();
    return a.pendingDials + a.incomingDials + b.pendingDials + b.incomingDials === 0;
  };
  return { clock, server, agent, pipes, idle };
}

/** A dial handler that dials a blackhole: it never decides, until its signal fires. */
function blackhole(signals: AbortSignal[]) {
  return async (d: IncomingDial): Promise<void> => {
    signals.push(d.signal);
    await new Promise<void>((r) => d.signal.addEventListener("abort", () => r(), { once: true }));
  };
}

describe("checklist 34: dial timeout, cancel, or peer gone before DIAL_RSP", () => {
  it("blackhole, acceptor gives up first (dialHandlerTimeoutMs): DIAL_FAILED, tables back to 0", async () => {
    const signals: AbortSignal[] = [];
    const p = pair(blackhole(signals), { dialHandlerTimeoutMs: 500, dialTimeoutMs: 5000 });
    const dialing = p.server.dial("10.255.255.1:80");
    dialing.catch(() => {});
    await until(() => signals.length === 1, "the agent's handler runs");
    p.clock.advance(500);
    await assert.rejects(dialing, (e) => e instanceof DialError && /timed out/.test(e.message));
    assert.equal(signals[0].aborted, true);
    await until(p.idle, "dial tables empty");
    p.server.close();
    await p.agent.closed;
  });

  it("blackhole, dialer gives up first (dialTimeoutMs): TIMEOUT, DIAL_CLS aborts the handler, tables back to 0", async () => {
    const signals: AbortSignal[] = [];
    const p = pair(blackhole(signals), { dialHandlerTimeoutMs: 5000, dialTimeoutMs: 300 });
    const dialing = p.server.dial("10.255.255.1:80");
    dialing.catch(() => {});
    await until(() => signals.length === 1, "the agent's handler runs");
    p.clock.advance(300);
    await assert.rejects(dialing, TimeoutError);
    await until(() => signals[0].aborted, "DIAL_CLS reached the agent");
    await until(p.idle, "dial tables empty");
    assert.equal(p.server.state, "open");
    p.server.close();
    await p.agent.closed;
  });

  it("cancelled by the caller: ABORTED at once, tables back to 0", async () => {
    const signals: AbortSignal[] = [];
    const p = pair(blackhole(signals), {});
    const ac = new AbortController();
    const dialing = p.server.dial("10.255.255.1:80", { signal: ac.signal });
    await until(() => signals.length === 1, "the agent's handler runs");
    ac.abort();
    await assert.rejects(dialing, AbortedError);
    await until(() => signals[0].aborted && p.idle(), "cancel reached the agent; tables empty");
    p.server.close();
    await p.agent.closed;
  });

  it("agent gone before DIAL_RSP: DIAL_FAILED in the same turn, no timer left behind", async () => {
    const signals: AbortSignal[] = [];
    const p = pair(blackhole(signals), {});
    const dialing = p.server.dial("10.255.255.1:80");
    dialing.catch(() => {});
    await until(() => signals.length === 1, "the agent's handler runs");
    p.pipes.kill();
    await assert.rejects(dialing, DialError);
    assert.equal(signals[0].aborted, true);
    assert.ok(p.idle());
    assert.equal(p.clock.pending, 0, "no timer of either session is left armed");
  });

  it("a peer that never answers a cancelled dial cannot pin the pending-dial table", async () => {
    const raw = rawPeer("server", { config: { dialTimeoutMs: 100 } });
    const dialing = raw.s.dial("x:1");
    raw.clock.advance(100);
    await assert.rejects(dialing, TimeoutError);
    assert.ok(raw.recv().some((p) => p.type === PacketType.DIAL_CLS));
    // The peer ignores the DIAL_CLS and never sends the DIAL_RSP it owes (SPEC 4).
    raw.clock.advance(100);
    await until(() => raw.s.state === "closed", "the session gave up on the peer");
    await goneAway(raw, GoAwayCode.PROTOCOL_ERROR);
  });
});

// ---- 35: floods of opens -------------------------------------------------------------

describe("checklist 35: dial floods beyond the limits", () => {
  it("DIAL_REQs beyond maxConnections are refused with a reason; the open connection keeps flowing", async () => {
    const channels: TunnelChannel[] = [];
    const raw = rawPeer("agent", {
      config: { maxConnections: 4 },
      onDial: async (d) => {
        if (d.address === "ok:1") {
          channels.push(d.accept() as TunnelChannel);
          return;
        }
        await new Promise<void>((r) => d.signal.addEventListener("abort", () => r()));
      },
    });
    raw.send({ type: PacketType.DIAL_REQ, protocol: "tcp", address: "ok:1", random: 1, window: 0 });
    await until(() => channels.length === 1, "first dial accepted");
    for (let i = 2; i <= 50; i++) {
      raw.send({
        type: PacketType.DIAL_REQ,
        protocol: "tcp",
        address: "hang:1",
        random: i,
        window: 0,
      });
    }
    await settle();
    const refused = raw
      .recv()
      .filter((p) => p.type === PacketType.DIAL_RSP && p.error === "connection limit reached");
    assert.equal(refused.length, 50 - 4);
    const st = raw.s.stats();
    assert.equal(st.connections + st.incomingDials, 4);
    // The established connection is unaffected.
    const r = channels[0].readable.getReader();
    raw.send({
      type: PacketType.DATA,
      connectID: channels[0].connectID,
      error: "",
      data: new Uint8Array([1, 2]),
    });
    assert.deepEqual((await r.read()).value, new Uint8Array([1, 2]));
    assert.equal(raw.s.state, "open");
    raw.s.close();
  });

  it("local dials beyond maxPendingDials are refused at once with DIAL_FAILED", async () => {
    const raw = rawPeer("server", { config: { maxPendingDials: 3, maxQueuedDials: 0 } });
    const dials = [1, 2, 3].map((i) => raw.s.dial(`x:${i}`));
    for (const d of dials) d.catch(() => {});
    await assert.rejects(
      raw.s.dial("x:4"),
      (e) => e instanceof DialError && /pending/.test(e.message),
    );
    assert.equal(raw.s.stats().pendingDials, 3);
    raw.s.close();
    for (const d of dials) await assert.rejects(d, DialError);
    assert.equal(raw.s.stats().pendingDials, 0);
  });
});

describe("dials beyond the limits wait in a bounded queue", () => {
  const dialReqs = (raw: ReturnType<typeof rawPeer>) =>
    raw.recv().filter((p) => p.type === PacketType.DIAL_REQ) as Array<{
      random: number;
      address: string;
    }>;
  const answer = (raw: ReturnType<typeof rawPeer>, random: number, connectID: number) =>
    raw.send({ type: PacketType.DIAL_RSP, error: "", connectID, random, window: 0 });

  it("queued in order, started as slots free; past the queue: DialBusyError at once", async () => {
    const raw = rawPeer("server", { config: { maxPendingDials: 2, maxQueuedDials: 3 } });
    const dials = [1, 2, 3, 4, 5].map((i) => raw.s.dial(`x:${i}`));
    for (const d of dials) d.catch(() => {});
    assert.deepEqual(
      dialReqs(raw).map((p) => p.address),
      ["x:1", "x:2"],
    );
    assert.equal(raw.s.stats().pendingDials, 2);
    assert.equal(raw.s.stats().queuedDials, 3);
    await assert.rejects(raw.s.dial("x:6"), (e: unknown) => {
      assert.ok(e instanceof DialBusyError);
      assert.ok(e instanceof DialError);
      assert.equal(e.code, "DIAL_FAILED");
      assert.equal(e.reason, "busy");
      assert.equal(e.retryAfterMs, 1000);
      assert.match(e.message, /dial x:6 via .*2 dials already pending, 3 queued/);
      return true;
    });
    // An answer frees a slot: the oldest queued dial goes out.
    answer(raw, dialReqs(raw)[0].random, 1);
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(
      dialReqs(raw).map((p) => p.address),
      ["x:1", "x:2", "x:3"],
    );
    assert.equal((await dials[0]).peer.id, AGENT_ID.id);
    assert.equal(raw.s.stats().queuedDials, 2);
    // A refused dial frees its slot too.
    raw.send({
      type: PacketType.DIAL_RSP,
      error: "nope",
      connectID: 0,
      random: dialReqs(raw)[1].random,
      window: 0,
    });
    await assert.rejects(dials[1], DialError);
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(
      dialReqs(raw).map((p) => p.address),
      ["x:1", "x:2", "x:3", "x:4"],
    );
    const st = raw.s.stats();
    assert.equal(st.dialsQueued, 3);
    assert.equal(st.dialsRefused, 1);
    // Closing the session fails what is still queued.
    raw.s.close();
    await assert.rejects(
      dials[4],
      (e: unknown) => e instanceof DialError && /session ended/.test(String(e)),
    );
    assert.equal(raw.s.stats().queuedDials, 0);
  });

  it("a queued dial times out on its own clock, or leaves on abort, without a DIAL_REQ", async () => {
    const raw = rawPeer("server", { config: { maxPendingDials: 1, maxQueuedDials: 10 } });
    const first = raw.s.dial("x:1", { timeoutMs: 60_000 });
    first.catch(() => {});
    const timed = raw.s.dial("x:2", { timeoutMs: 500 });
    const ac = new AbortController();
    const aborted = raw.s.dial("x:3", { signal: ac.signal, timeoutMs: 60_000 });
    const late = raw.s.dial("x:4", { timeoutMs: 1000 });
    assert.equal(raw.s.stats().queuedDials, 3);
    ac.abort(new Error("caller gave up"));
    await assert.rejects(aborted, AbortedError);
    raw.clock.advance(501);
    await assert.rejects(
      timed,
      (e: unknown) => e instanceof TimeoutError && /free dial slot/.test(String(e)),
    );
    assert.equal(raw.s.stats().queuedDials, 1);
    // x:4 leaves the queue with 499 ms left: its dial keeps only that long.
    answer(raw, dialReqs(raw)[0].random, 1);
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(
      dialReqs(raw).map((p) => p.address),
      ["x:1", "x:4"],
    );
    raw.clock.advance(500);
    await assert.rejects(late, TimeoutError);
    raw.s.close();
  });

  it("memory: 10,000 queued dials cost under 4 KiB each (documented: about 1.5 KiB)", async () => {
    const raw = rawPeer("server", { config: { maxPendingDials: 1, maxQueuedDials: 10_000 } });
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const dials: Promise<Channel>[] = [];
    for (let i = 0; i < 10_001; i++) {
      const d = raw.s.dial(`10.0.${i >> 8}.${i & 255}:10250`, { timeoutMs: 600_000 });
      d.catch(() => {});
      dials.push(d);
    }
    gc?.();
    const perDial = (process.memoryUsage().heapUsed - before) / 10_000;
    assert.equal(raw.s.stats().queuedDials, 10_000);
    assert.ok(perDial < 4096, `${perDial.toFixed(0)} bytes per queued dial`);
    raw.s.close();
    await Promise.allSettled(dials);
    assert.equal(raw.s.stats().queuedDials, 0);
  });
});

// ---- 37: mux protocol violations -----------------------------------------------------

describe("checklist 37: mux protocol violations end the session with the right GO_AWAY", () => {
  it("window update overflow past 2^31-1 (the protocol's max window): FLOW_CONTROL_ERROR", async () => {
    const w = await serverWithDial();
    const reading = w.ch.readable.getReader().read();
    // The peer granted 4096 at DIAL_RSP; 4096 + (2^31 - 4096) = 2^31 > 2^31 - 1.
    w.send({
      type: PacketType.WINDOW_UPDATE,
      connectID: w.ch.connectID,
      credit: KONNECTIVITY_MAX_WINDOW - 4096,
    });
    assert.equal(w.s.state, "open", "exactly the max window is allowed");
    w.send({ type: PacketType.WINDOW_UPDATE, connectID: w.ch.connectID, credit: 1 });
    await goneAway(w, GoAwayCode.FLOW_CONTROL_ERROR);
    await assert.rejects(reading, ChannelResetError);
  });

  it("window update credit past 2^32-1 does not decode: PROTOCOL_ERROR", async () => {
    const w = await serverWithDial();
    // WINDOW_UPDATE{connectID=1, credit=2^32}: the uint32 field overflows.
    const msg = new Uint8Array([0x08, 7, 0x4a, 8, 0x08, 0x01, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10]);
    assert.throws(() => decodePacket(msg), ProtocolError);
    w.send(msg);
    await goneAway(w, GoAwayCode.PROTOCOL_ERROR);
  });

  it("WINDOW_UPDATE with zero credit: PROTOCOL_ERROR", async () => {
    const w = await serverWithDial();
    w.send({ type: PacketType.WINDOW_UPDATE, connectID: w.ch.connectID, credit: 0 });
    await goneAway(w, GoAwayCode.PROTOCOL_ERROR);
  });

  it("a window above the max in DIAL_REQ or DIAL_RSP: FLOW_CONTROL_ERROR", async () => {
    const a = agentWithChannels();
    a.send({
      type: PacketType.DIAL_REQ,
      protocol: "tcp",
      address: "a:1",
      random: 1,
      window: 0x8000_0000,
    });
    await goneAway(a, GoAwayCode.FLOW_CONTROL_ERROR);
    const raw = rawPeer("server");
    const dialing = raw.s.dial("x:1");
    raw.send({
      type: PacketType.DIAL_RSP,
      error: "",
      connectID: 1,
      random: 1,
      window: 0x8000_0000,
    });
    await assert.rejects(dialing, DialError);
    await goneAway(raw, GoAwayCode.FLOW_CONTROL_ERROR);
  });

  it("DIAL_RSP (SYN) for a connection id already in use: PROTOCOL_ERROR, the dial fails typed", async () => {
    const w = await serverWithDial({}, 1);
    const second = w.s.dial("svc:2");
    w.send({ type: PacketType.DIAL_RSP, error: "", connectID: 1, random: 2, window: 4096 });
    await assert.rejects(second, DialError);
    await assert.rejects(w.ch.readable.getReader().read(), ChannelResetError);
    await goneAway(w, GoAwayCode.PROTOCOL_ERROR);
  });

  it("DIAL_RSP reusing a released id, or of the wrong parity: PROTOCOL_ERROR", async () => {
    for (const id of [1, 4]) {
      const w = await serverWithDial({}, 3);
      const again = w.s.dial("svc:2");
      again.catch(() => {});
      w.send({ type: PacketType.DIAL_RSP, error: "", connectID: id, random: 2, window: 0 });
      await goneAway(w, GoAwayCode.PROTOCOL_ERROR);
    }
  });

  it("a second DIAL_RSP for the same dial: PROTOCOL_ERROR", async () => {
    const w = await serverWithDial({}, 1);
    w.send({ type: PacketType.DIAL_RSP, error: "", connectID: 3, random: 1, window: 0 });
    await goneAway(w, GoAwayCode.PROTOCOL_ERROR);
  });

  it("a DIAL_REQ reusing a dial id: PROTOCOL_ERROR", async () => {
    const a = agentWithChannels();
    await a.open(5);
    a.send({ type: PacketType.DIAL_REQ, protocol: "tcp", address: "a:1", random: 5, window: 0 });
    await goneAway(a, GoAwayCode.PROTOCOL_ERROR);
  });

  for (const [name, mk] of [
    [
      "DATA",
      (id: number): Packet => ({
        type: PacketType.DATA,
        connectID: id,
        error: "",
        data: new Uint8Array(1),
      }),
    ],
    [
      "WINDOW_UPDATE",
      (id: number): Packet => ({ type: PacketType.WINDOW_UPDATE, connectID: id, credit: 1 }),
    ],
    ["HALF_CLOSE", (id: number): Packet => ({ type: PacketType.HALF_CLOSE, connectID: id })],
    [
      "CLOSE_REQ",
      (id: number): Packet => ({ type: PacketType.CLOSE_REQ, connectID: id, error: "" }),
    ],
    [
      "CLOSE_RSP",
      (id: number): Packet => ({ type: PacketType.CLOSE_RSP, connectID: id, error: "" }),
    ],
  ] as const) {
    it(`${name} for an unknown connection: PROTOCOL_ERROR`, async () => {
      const a = agentWithChannels();
      await a.open(1);
      a.send(mk(99));
      await goneAway(a, GoAwayCode.PROTOCOL_ERROR);
    });

    it(`${name} for a connection that is closed and forgotten: PROTOCOL_ERROR`, async () => {
      const a = agentWithChannels();
      const ch = await a.open(1);
      a.send({ type: PacketType.CLOSE_REQ, connectID: ch.connectID, error: "" });
      assert.equal((await ch.closed).kind, "reset");
      assert.equal(a.s.stats().connections, 0);
      a.send(mk(ch.connectID));
      await goneAway(a, GoAwayCode.PROTOCOL_ERROR);
    });
  }

  it("DATA / WINDOW_UPDATE / HALF_CLOSE after this side sent its CLOSE_REQ are dropped", async () => {
    const a = agentWithChannels();
    const ch = await a.open(1);
    ch.abort();
    await until(() => a.recv().some((p) => p.type === PacketType.CLOSE_REQ), "CLOSE_REQ sent");
    const id = ch.connectID;
    a.send(
      { type: PacketType.DATA, connectID: id, error: "", data: new Uint8Array(8000) },
      { type: PacketType.WINDOW_UPDATE, connectID: id, credit: 0x7fff_ffff },
      { type: PacketType.HALF_CLOSE, connectID: id },
    );
    assert.equal(a.s.state, "open");
    a.send({ type: PacketType.CLOSE_RSP, connectID: id, error: "" });
    assert.equal(a.s.stats().connections, 0);
    assert.equal(a.s.state, "open");
    a.s.close();
  });

  it("DATA after HALF_CLOSE, or a second HALF_CLOSE: PROTOCOL_ERROR", async () => {
    for (const after of [
      (id: number): Packet => ({
        type: PacketType.DATA,
        connectID: id,
        error: "",
        data: new Uint8Array(1),
      }),
      (id: number): Packet => ({ type: PacketType.HALF_CLOSE, connectID: id }),
    ]) {
      const a = agentWithChannels();
      const ch = await a.open(1);
      a.send({ type: PacketType.HALF_CLOSE, connectID: ch.connectID });
      a.send(after(ch.connectID));
      await goneAway(a, GoAwayCode.PROTOCOL_ERROR);
    }
  });

  it("DIAL_CLS for a dial never requested: PROTOCOL_ERROR; for one answered and forgotten: ignored", async () => {
    const a = agentWithChannels();
    const ch = await a.open(1);
    a.send({ type: PacketType.CLOSE_REQ, connectID: ch.connectID, error: "" });
    a.send({ type: PacketType.DIAL_CLS, random: 1 });
    assert.equal(a.s.state, "open");
    a.send({ type: PacketType.DIAL_CLS, random: 2 });
    await goneAway(a, GoAwayCode.PROTOCOL_ERROR);
  });

  it("bad version/type: an unknown packet type or a payload of the wrong type: PROTOCOL_ERROR", async () => {
    for (const msg of [
      new Uint8Array([0x08, 42, 0x12, 0x00]),
      new Uint8Array([0x08, PacketType.DATA, 0x12, 0x00]),
    ]) {
      const raw = rawPeer("agent");
      raw.send(msg);
      await goneAway(raw, GoAwayCode.PROTOCOL_ERROR);
    }
  });
});

// ---- 38: half-close, reset and close races --------------------------------------------

describe("checklist 38: half-close, reset and close races", () => {
  it("closeWrite, then keep reading: the peer's data still arrives, then a clean end on both sides", async () => {
    const a = agentWithChannels();
    const ch = await a.open(1);
    await ch.closeWrite();
    assert.ok(a.recv().some((p) => p.type === PacketType.HALF_CLOSE));
    const r = ch.readable.getReader();
    a.send({
      type: PacketType.DATA,
      connectID: ch.connectID,
      error: "",
      data: new Uint8Array([9, 9]),
    });
    assert.deepEqual((await r.read()).value, new Uint8Array([9, 9]));
    a.send({ type: PacketType.HALF_CLOSE, connectID: ch.connectID });
    assert.equal((await r.read()).done, true);
    await until(() => a.recv().some((p) => p.type === PacketType.CLOSE_REQ), "CLOSE_REQ");
    a.send({ type: PacketType.CLOSE_RSP, connectID: ch.connectID, error: "" });
    assert.equal((await ch.closed).kind, "closed");
    assert.equal(a.s.stats().connections, 0);
    a.s.close();
  });

  it("reset while the peer writes: its blocked writes fail CHANNEL_RESET; both tables empty", async () => {
    const agentChannels: Channel[] = [];
    const p = pair((d) => void agentChannels.push(d.accept()), { connectionWindow: 1024 });
    const ch = await p.server.dial("w:1");
    // The agent's side never reads; the server's writer fills the window and blocks.
    const w = ch.writable.getWriter();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) writes.push(w.write(new Uint8Array(1024)));
    for (const x of writes) x.catch(() => {});
    await until(() => agentChannels.length === 1, "accepted");
    await until(() => p.agent.stats().bufferedReceiveBytes === 1024, "window filled");
    agentChannels[0].abort(); // the agent's application resets the connection
    const results = await Promise.allSettled(writes);
    const failed = results.filter((x): x is PromiseRejectedResult => x.status === "rejected");
    assert.ok(failed.length > 0, "the blocked writes fail");
    for (const f of failed) assert.ok(f.reason instanceof ChannelResetError, `${f.reason}`);
    assert.equal((await ch.closed).kind, "reset");
    assert.equal((await agentChannels[0].closed).kind, "aborted");
    await until(
      () => p.server.stats().connections + p.agent.stats().connections === 0,
      "both tables empty",
    );
    assert.equal(p.server.state, "open");
    p.server.close();
    await p.agent.closed;
  });

  it("close() with writes pending against a stalled reader is bounded by closeTimeoutMs, then resets", async () => {
    const agentChannels: Channel[] = [];
    const p = pair((d) => void agentChannels.push(d.accept()), {
      connectionWindow: 1024,
      channel: { closeTimeoutMs: 50 },
    });
    const ch = await p.server.dial("w:1");
    const w = ch.writable.getWriter();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 4; i++) writes.push(w.write(new Uint8Array(1024)));
    for (const x of writes) x.catch(() => {});
    w.releaseLock();
    await until(() => agentChannels.length === 1, "accepted");
    await until(() => p.agent.stats().bufferedReceiveBytes === 1024, "window filled");
    await ch.close(); // never rejects; graceful could not finish, so it aborted
    assert.equal((await ch.closed).kind, "aborted");
    assert.equal((await agentChannels[0].closed).kind, "reset");
    await until(
      () => p.server.stats().connections + p.agent.stats().connections === 0,
      "both tables empty",
    );
    p.server.close();
    await p.agent.closed;
  });

  it("session close while a PING is outstanding and writes are blocked; the GO_AWAY is never answered", async () => {
    const w = await serverWithDial({ keepaliveIntervalMs: 1000, keepaliveTimeoutMs: 5000 });
    const writer = w.ch.writable.getWriter();
    const blocked = writer.write(new Uint8Array(4096 + 10)); // beyond the peer's 4096 window
    blocked.catch(() => {});
    w.clock.advance(1000); // PING out, never answered
    assert.ok(w.recv().filter((p) => p.type === PacketType.PING).length >= 2);
    w.s.close();
    await assert.rejects(blocked, ChannelResetError);
    const info = await w.s.closed; // resolves without anything from the peer
    assert.equal(info.goAway?.code, GoAwayCode.NO_ERROR);
    assert.equal(w.recv().at(-1)?.type, PacketType.GO_AWAY);
    assert.equal(w.pipeClosed(), true);
    assert.equal(w.clock.pending, 0, "keepalive and ping timers are gone");
  });
});
