/**
 * Fuzz: a peer that sends random packets (well-formed and not) into a live
 * session. The session either goes on with bounded tables and buffers, or ends
 * with a typed error and a GO_AWAY; it never throws, hangs or grows without bound.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SpokewireError } from "../../src/channel/errors.ts";
import type { Channel } from "../../src/channel/types.ts";
import {
  decodePacket,
  encodePacket,
  GoAwayCode,
  KonnectivitySession,
  memoryPipePair,
  type Packet,
  PacketType,
  type SessionCloseInfo,
  type SessionRole,
  type TunnelChannel,
} from "../../src/konnectivity/mod.ts";
import { arbPeerPacket } from "../_harness/konnectivity_arb.ts";
import { FakeClock } from "../_harness/konnectivity_clock.ts";
import { SERVER_ID } from "../_harness/konnectivity_pairs.ts";

const WINDOW = 2048;
const MAX_CONNS = 6;
const BACKLOG = 8192;
const PIPE_HWM = 4096;
/** Inputs handled while the session was still open, over all runs (depth of the fuzz). */
let processed = 0;

function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

type Input =
  /** `fix`: rewrite the packet's ids to ones the session would accept, to get past the first check. */
  | { kind: "packet"; p: Packet; fix: boolean; pick: number }
  | { kind: "bytes"; b: Uint8Array }
  | { kind: "tick"; ms: number }
  | { kind: "dial" };

const arbInput: fc.Arbitrary<Input> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .tuple(
        arbPeerPacket(),
        fc.integer({ min: 0, max: 19 }).map((x) => x > 0),
        fc.nat(),
      )
      .map(([p, fix, pick]) => ({ kind: "packet" as const, p, fix, pick })),
  },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => ({ kind: "bytes" as const, b })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 20_000 }).map((ms) => ({ kind: "tick" as const, ms })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "dial" as const }) },
);

async function fuzzRun(
  role: SessionRole,
  inputs: Input[],
  peerReads: boolean,
): Promise<SessionCloseInfo> {
  const clock = new FakeClock();
  const pipes = memoryPipePair({ manual: true, highWaterMark: PIPE_HWM });
  const peerEnd = pipes.b;
  const fromSession: Packet[] = [];
  peerEnd.start({
    message: (m) => {
      fromSession.push(decodePacket(m)); // the session must only ever send well-formed packets
    },
    closed: () => {},
  });
  const accepted: Channel[] = [];
  const session = new KonnectivitySession(pipes.a, {
    peer: SERVER_ID,
    role,
    timers: clock,
    config: {
      connectionWindow: WINDOW,
      maxConnections: MAX_CONNS,
      maxPendingDials: MAX_CONNS,
      maxControlBacklog: BACKLOG,
      maxDataPerPacket: 1000,
      keepaliveIntervalMs: 5000,
      keepaliveTimeoutMs: 5000,
      dialTimeoutMs: 30_000,
      dialHandlerTimeoutMs: 30_000,
    },
    onDial: async (d) => {
      if (d.address === "a:1") {
        const ch = d.accept();
        accepted.push(ch);
        ch.closed.then(() => ended.add(ch));
        return;
      }
      await new Promise<void>((r) => {
        if (d.signal.aborted) r();
        else d.signal.addEventListener("abort", () => r(), { once: true });
      });
    },
  });
  const dials: Array<Promise<unknown>> = [];
  const dialErrors: unknown[] = [];
  // What a well-behaved peer would know: its own last dial id, the connection ids in use.
  let peerDialId = 0;
  let peerConnId = role === "agent" ? 0 : -1; // the peer assigns even ids to an agent, odd to a server
  let ourDials = 0;
  const ended = new Set<Channel>();
  const liveIds = (): number[] =>
    [...accepted, ...established]
      .filter((c) => !ended.has(c))
      .map((c) => (c as TunnelChannel).connectID);
  const established: Channel[] = [];
  const fix = (p: Packet, pick: number): Packet => {
    const ids = liveIds();
    const cid = ids.length > 0 ? ids[pick % ids.length] : 1;
    const needsConn =
      p.type === PacketType.DATA ||
      p.type === PacketType.WINDOW_UPDATE ||
      p.type === PacketType.HALF_CLOSE ||
      p.type === PacketType.CLOSE_REQ ||
      p.type === PacketType.CLOSE_RSP;
    if ((needsConn && ids.length === 0) || (p.type === PacketType.DIAL_CLS && peerDialId === 0)) {
      // Nothing to talk about yet: open something instead.
      return {
        type: PacketType.DIAL_REQ,
        protocol: "tcp",
        address: "a:1",
        random: ++peerDialId,
        window: 0,
      };
    }
    switch (p.type) {
      case PacketType.DIAL_REQ:
        return {
          ...p,
          random: ++peerDialId,
          address: pick % 3 === 0 ? "b:2" : "a:1",
          window: p.window % 0x8000_0000,
        };
      case PacketType.DIAL_RSP:
        if (ourDials === 0) return { type: PacketType.PONG, opaque: pick };
        peerConnId += 2;
        return {
          ...p,
          random: ourDials > 0 ? 1 + (pick % ourDials) : 1,
          connectID: p.error ? 0 : peerConnId,
        };
      case PacketType.DATA:
        return { ...p, connectID: cid, data: p.data.subarray(0, pick % 700) };
      case PacketType.WINDOW_UPDATE:
        return { ...p, connectID: cid, credit: 1 + (pick % 4096) };
      case PacketType.GO_AWAY:
        return { type: PacketType.PING, opaque: pick % 1000 };
      case PacketType.HALF_CLOSE:
      case PacketType.CLOSE_REQ:
      case PacketType.CLOSE_RSP:
        return { ...p, connectID: cid };
      case PacketType.DIAL_CLS:
        return { ...p, random: peerDialId > 0 ? 1 + (pick % peerDialId) : 1 };
      default:
        return p;
    }
  };
  for (const input of inputs) {
    if (session.state !== "open") break;
    processed++;
    if (input.kind === "packet") {
      peerEnd.send(encodePacket(input.fix ? fix(input.p, input.pick) : input.p));
    } else if (input.kind === "bytes") peerEnd.send(input.b);
    else if (input.kind === "tick") clock.advance(input.ms);
    else {
      ourDials++;
      dials.push(
        session.dial("x:1").then(
          (ch) => {
            established.push(ch);
            ch.closed.then(() => ended.add(ch));
          },
          (e) => dialErrors.push(e),
        ),
      );
    }
    peerEnd.flush();
    if (peerReads) pipes.a.flush();
    await settle();
    const st = session.stats();
    assert.ok(st.connections <= MAX_CONNS + st.pendingDials, `connections ${st.connections}`);
    assert.ok(st.incomingDials <= MAX_CONNS);
    assert.ok(st.pendingDials <= MAX_CONNS);
    assert.ok(
      st.bufferedReceiveBytes <= st.connections * WINDOW,
      `recv ${st.bufferedReceiveBytes}`,
    );
    assert.ok(
      st.bufferedSendBytes <= PIPE_HWM + BACKLOG + session.config.maxMessageSize,
      `send backlog ${st.bufferedSendBytes}`,
    );
  }
  if (session.state === "open") {
    session.close();
  }
  const info = await session.closed;
  assert.ok(info.error instanceof SpokewireError, `session ended with ${info.error}`);
  pipes.a.flush();
  // A session that ended on its own (not by our close) said why, with a GO_AWAY, unless the
  // peer's GO_AWAY ended it.
  const last = fromSession[fromSession.length - 1];
  if (!info.goAway?.fromPeer) {
    assert.equal(last?.type, PacketType.GO_AWAY, "the session's last packet is a GO_AWAY");
  }
  // Everything the session handed out has ended, and every dial settled with a typed error.
  await Promise.all(dials);
  for (const e of dialErrors) assert.ok(e instanceof SpokewireError, `dial: ${e}`);
  for (const ch of [...accepted, ...established]) {
    const c = await ch.closed;
    assert.ok(c.kind === "reset" || c.kind === "aborted" || c.kind === "closed");
  }
  assert.equal(session.stats().connections, 0);
  return info;
}

describe("konnectivity session fuzz: random packets from the peer", () => {
  for (const role of ["agent", "server"] as const) {
    it(`${role} side: typed errors or a GO_AWAY, never a crash, hang or unbounded growth`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(arbInput, { minLength: 5, maxLength: 60, size: "max" }),
          fc.boolean(),
          async (inputs, reads) => {
            await fuzzRun(role, inputs, reads);
          },
        ),
        { numRuns: 300, includeErrorInReport: true },
      );
    });
  }

  it("the fuzz got deep: many inputs reached a live session", () => {
    assert.ok(processed >= 2000, `only ${processed} inputs reached a live session`);
  });

  it("a peer that floods DIAL_REQs and never reads gets GO_AWAY{OVERLOAD}, not a growing queue", async () => {
    const inputs: Input[] = Array.from({ length: 400 }, (_, i) => ({
      kind: "packet" as const,
      p: { type: PacketType.DIAL_REQ, protocol: "tcp", address: "b:2", random: i + 1, window: 0 },
      fix: false,
      pick: 0,
    }));
    // Each refused dial costs this side one DIAL_RSP; the peer reads none of them.
    const info = await fuzzRun("agent", inputs, false);
    assert.equal(info.goAway?.code, GoAwayCode.OVERLOAD, `${info.error}`);
  });
});
