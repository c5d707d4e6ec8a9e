/**
 * Model-based test of the Konnectivity session state machine (fc.commands):
 * interleavings of dial, data, half-close, abort, dial cancel, window updates
 * (reads that free window, then delivery of the WINDOW_UPDATEs), keepalive
 * ticks and keepalive loss, with every message delivery under the test's
 * control (manual in-memory pipes, fake clock).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AbortedError, DialError, SpokewireError } from "../../src/channel/errors.ts";
import type { Channel, CloseInfo } from "../../src/channel/types.ts";
import {
  type IncomingDial,
  KonnectivitySession,
  type MemoryPipe,
  memoryPipePair,
  type TunnelChannel,
} from "../../src/konnectivity/mod.ts";
import { FakeClock } from "../_harness/konnectivity_clock.ts";
import { AGENT_ID, SERVER_ID } from "../_harness/konnectivity_pairs.ts";

const WINDOW = 1024;
const INTERVAL = 1000;
const KA_TIMEOUT = 500;

/** Byte `o` of direction `dir` of connection `n`: a pattern that says where it belongs. */
function pat(n: number, dir: number, o: number): number {
  return (o * 7 + n * 13 + dir * 101) & 0xff;
}

function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

interface Side {
  ch: Channel;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  wOff: number;
  rOff: number;
  finSent: boolean;
  aborted: boolean;
  readPending: boolean;
  readDone: boolean;
  readError: unknown;
  closed: CloseInfo | undefined;
}

interface Conn {
  n: number;
  /** [server side, agent side] */
  sides: [Side | undefined, Side | undefined];
}

interface Dial {
  n: number;
  kind: "acc" | "ref" | "hang";
  ac: AbortController;
  state: "pending" | "ok" | "err";
  error: unknown;
  cancelled: boolean;
}

class World {
  readonly clock = new FakeClock();
  readonly toAgent: MemoryPipe;
  readonly toServer: MemoryPipe;
  readonly server: KonnectivitySession;
  readonly agent: KonnectivitySession;
  readonly dials: Dial[] = [];
  readonly conns = new Map<number, Conn>();
  readonly problems: string[] = [];
  /** Whether some window auto-tuned above its initial size. */
  grew = false;
  readonly seen = [new Set<number>(), new Set<number>()];
  #n = 0;

  constructor() {
    const pipes = memoryPipePair({ manual: true });
    this.toAgent = pipes.a;
    this.toServer = pipes.b;
    const config = {
      connectionWindow: WINDOW,
      maxConnectionWindow: 4 * WINDOW,
      windowGrowthBudget: 6 * WINDOW,
      maxDataPerPacket: 700,
      keepaliveIntervalMs: INTERVAL,
      keepaliveTimeoutMs: KA_TIMEOUT,
      dialTimeoutMs: 1_000_000,
      dialHandlerTimeoutMs: 1_000_000,
    };
    this.server = new KonnectivitySession(pipes.a, {
      peer: AGENT_ID,
      role: "server",
      config,
      timers: this.clock,
    });
    this.agent = new KonnectivitySession(pipes.b, {
      peer: SERVER_ID,
      role: "agent",
      config,
      timers: this.clock,
      onDial: (d) => this.#onDial(d),
    });
  }

  get dead(): boolean {
    return this.server.state !== "open" || this.agent.state !== "open";
  }

  async #onDial(d: IncomingDial): Promise<void> {
    const n = Number(d.address.split("-")[1].split(":")[0]);
    if (d.address.startsWith("ref")) throw new Error("refused by test");
    if (d.address.startsWith("hang")) {
      await new Promise<void>((r) => {
        if (d.signal.aborted) r();
        else d.signal.addEventListener("abort", () => r(), { once: true });
      });
      return;
    }
    const ch = d.accept();
    this.#attach(n, 1, ch);
  }

  #attach(n: number, side: 0 | 1, ch: Channel): void {
    const id = (ch as TunnelChannel).connectID;
    if (this.seen[side].has(id)) this.problems.push(`connection id ${id} reused on side ${side}`);
    this.seen[side].add(id);
    let c = this.conns.get(n);
    if (!c) {
      c = { n, sides: [undefined, undefined] };
      this.conns.set(n, c);
    }
    const s: Side = {
      ch,
      writer: ch.writable.getWriter(),
      reader: ch.readable.getReader(),
      wOff: 0,
      rOff: 0,
      finSent: false,
      aborted: false,
      readPending: false,
      readDone: false,
      readError: undefined,
      closed: undefined,
    };
    s.writer.closed.catch(() => {});
    ch.closed.then((info) => {
      s.closed = info;
    });
    c.sides[side] = s;
  }

  dial(kind: Dial["kind"]): void {
    const n = ++this.#n;
    const d: Dial = {
      n,
      kind,
      ac: new AbortController(),
      state: "pending",
      error: undefined,
      cancelled: false,
    };
    this.dials.push(d);
    this.server.dial(`${kind}-${n}:80`, { signal: d.ac.signal }).then(
      (ch) => {
        d.state = "ok";
        if (d.cancelled) this.problems.push(`dial ${n} resolved after it was cancelled`);
        this.#attach(n, 0, ch);
      },
      (e) => {
        d.state = "err";
        d.error = e;
      },
    );
  }

  write(c: Conn, side: 0 | 1, len: number): void {
    const s = c.sides[side];
    if (!s || s.finSent || s.aborted) return;
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) b[i] = pat(c.n, side, s.wOff + i);
    s.wOff += len;
    s.writer.write(b).catch(() => {});
  }

  read(c: Conn, side: 0 | 1): void {
    const s = c.sides[side];
    if (!s || s.readPending || s.readDone || s.readError !== undefined) return;
    s.readPending = true;
    s.reader.read().then(
      ({ value, done }) => {
        s.readPending = false;
        if (done) {
          s.readDone = true;
          return;
        }
        const peer = 1 - side;
        for (let i = 0; i < value.length; i++) {
          if (value[i] !== pat(c.n, peer, s.rOff + i)) {
            this.problems.push(`conn ${c.n} side ${side}: wrong byte at ${s.rOff + i}`);
            break;
          }
        }
        s.rOff += value.length;
      },
      (e) => {
        s.readPending = false;
        s.readError = e;
      },
    );
  }

  halfClose(c: Conn, side: 0 | 1): void {
    const s = c.sides[side];
    if (!s || s.finSent || s.aborted) return;
    s.finSent = true;
    s.writer.close().catch(() => {});
  }

  /** Graceful close(): half-close, then wait (in the background) for the peer. */
  close(c: Conn, side: 0 | 1): void {
    const s = c.sides[side];
    if (!s || s.finSent || s.aborted) return;
    s.finSent = true;
    s.writer.releaseLock();
    s.ch.close().catch((e) => this.problems.push(`close() rejected: ${e}`));
  }

  abort(c: Conn, side: 0 | 1): void {
    const s = c.sides[side];
    if (!s || s.aborted) return;
    s.aborted = true;
    s.ch.abort(new Error("model abort"));
  }

  deliver(toAgent: boolean, n: number): void {
    (toAgent ? this.toAgent : this.toServer).flush(n);
  }

  /** Invariants that hold after every command. */
  check(): void {
    assert.deepEqual(this.problems, []);
    for (const [i, s] of [this.server, this.agent].entries()) {
      const st = s.stats();
      // Buffers never exceed the windows granted, and the windows stay in the budget.
      assert.ok(
        st.bufferedReceiveBytes <= st.receiveWindows,
        `side ${i} buffers ${st.bufferedReceiveBytes}, windows ${st.receiveWindows}`,
      );
      assert.ok(
        st.receiveWindows <= st.connections * WINDOW + 6 * WINDOW,
        `side ${i}: windows ${st.receiveWindows} over budget (${st.connections} connections)`,
      );
      if (st.receiveWindows > st.connections * WINDOW) this.grew = true;
      assert.ok(st.connections <= this.dials.length);
    }
    for (const c of this.conns.values()) {
      for (const side of [0, 1] as const) {
        const s = c.sides[side];
        const p = c.sides[1 - side];
        if (!s) continue;
        // Never more read than the peer wrote.
        if (p) assert.ok(s.rOff <= p.wOff, `conn ${c.n}: read ${s.rOff} > written ${p.wOff}`);
        // A clean end means everything arrived.
        if (s.readDone && p) assert.equal(s.rOff, p.wOff, `conn ${c.n} side ${side}: short EOF`);
        if (s.closed?.kind === "closed") {
          assert.ok(s.readDone || s.readError === undefined);
        }
        if (s.readError !== undefined) assert.ok(s.readError instanceof SpokewireError);
      }
    }
    if (this.server.state !== "open") {
      // Session death: every dial settled, every server-side channel ended.
      for (const d of this.dials) assert.notEqual(d.state, "pending", `dial ${d.n} still pending`);
      for (const c of this.conns.values()) {
        const s = c.sides[0];
        if (s) assert.ok(s.closed !== undefined, `conn ${c.n} server side not ended`);
      }
    }
    for (const d of this.dials) {
      if (d.state === "err") {
        assert.ok(d.error instanceof SpokewireError, `dial ${d.n}: ${d.error}`);
        if (d.kind === "ref" && !d.cancelled && !this.dead) assert.ok(d.error instanceof DialError);
        if (d.cancelled && !this.dead && d.kind !== "ref") {
          assert.ok(d.error instanceof AbortedError || d.error instanceof DialError, `${d.error}`);
        }
      }
    }
  }

  /** A number that changes whenever a read completes. */
  #progress(): string {
    let n = 0;
    let done = 0;
    for (const c of this.conns.values()) {
      for (const x of c.sides) {
        if (!x) continue;
        n += x.rOff;
        if (x.readDone || x.readError !== undefined) done++;
        if (x.closed) done++;
      }
    }
    return `${n}/${done}/${this.conns.size}`;
  }

  /** Finish everything and check nothing leaked. */
  async finish(): Promise<void> {
    if (!this.dead) {
      for (const d of this.dials) {
        if (d.state !== "pending") continue;
        d.cancelled = true;
        d.ac.abort();
      }
      for (const c of this.conns.values()) {
        for (const side of [0, 1] as const) this.halfClose(c, side);
      }
    }
    // Read and deliver until nothing moves: no message in flight, no read making progress.
    let quiet = 0;
    for (let round = 0; round < 5000 && quiet < 3; round++) {
      const before = this.#progress();
      for (const c of this.conns.values()) {
        this.read(c, 0);
        this.read(c, 1);
      }
      this.toAgent.flush();
      this.toServer.flush();
      await settle();
      const idle = this.toAgent.pending + this.toServer.pending === 0;
      quiet = idle && this.#progress() === before ? quiet + 1 : 0;
    }
    await settle();
    this.check();
    for (const d of this.dials) assert.notEqual(d.state, "pending", `dial ${d.n} never settled`);
    for (const c of this.conns.values()) {
      for (const side of [0, 1] as const) {
        const s = c.sides[side];
        if (!s) continue;
        assert.ok(s.closed !== undefined, `conn ${c.n} side ${side} never ended`);
        const p = c.sides[1 - side];
        if (s.closed.kind === "closed") {
          assert.ok(p, "a clean close needs a peer");
          assert.equal(s.rOff, p.wOff, `conn ${c.n} side ${side}: clean close with bytes missing`);
        }
        if (!this.dead && p && !s.aborted && !p.aborted && s.closed.kind !== "closed") {
          assert.fail(`conn ${c.n} side ${side}: ${s.closed.kind} though nobody aborted`);
        }
        if (p?.aborted && !s.aborted && s.closed.kind === "closed" && s.rOff !== p.wOff) {
          assert.fail(`conn ${c.n}: peer aborted but side ${side} closed cleanly short`);
        }
      }
    }
    if (!this.dead) {
      for (const s of [this.server, this.agent]) {
        const st = s.stats();
        assert.equal(st.connections, 0, "connection table not empty at the end");
        assert.equal(st.pendingDials, 0, "pending dials left at the end");
        assert.equal(st.incomingDials, 0, "incoming dials left at the end");
      }
    }
    this.server.abort();
    this.agent.abort();
  }
}

type Cmd = fc.AsyncCommand<object, World>;

/** Run a step, let every promise it started settle, then check the invariants. */
async function step(w: World, act: () => void | Promise<void>): Promise<void> {
  await act();
  await settle();
  w.check();
}

function pickConn(w: World, i: number): Conn | undefined {
  const all = [...w.conns.values()];
  return all.length === 0 ? undefined : all[i % all.length];
}

class DialCmd implements Cmd {
  readonly kind: Dial["kind"];
  constructor(kind: Dial["kind"]) {
    this.kind = kind;
  }
  check = (): boolean => true;
  async run(_m: object, w: World): Promise<void> {
    await step(w, async () => {
      if (!w.dead) w.dial(this.kind);
    });
  }
  toString = (): string => `dial(${this.kind})`;
}
class CancelCmd implements Cmd {
  readonly i: number;
  constructor(i: number) {
    this.i = i;
  }
  check = (): boolean => true;
  async run(_m: object, w: World): Promise<void> {
    await step(w, async () => {
      const d = w.dials[this.i % Math.max(1, w.dials.length)];
      if (d?.state !== "pending") return;
      d.cancelled = true;
      d.ac.abort(new Error("model cancel"));
    });
  }
  toString = (): string => `cancel(${this.i})`;
}
class ConnCmd implements Cmd {
  readonly op: "write" | "read" | "halfClose" | "close" | "abort";
  readonly i: number;
  readonly side: 0 | 1;
  readonly len: number;
  constructor(op: ConnCmd["op"], i: number, side: 0 | 1, len: number) {
    this.op = op;
    this.i = i;
    this.side = side;
    this.len = len;
  }
  check = (): boolean => true;
  async run(_m: object, w: World): Promise<void> {
    await step(w, async () => {
      const c = pickConn(w, this.i);
      if (!c) return;
      if (this.op === "write") w.write(c, this.side, this.len);
      else if (this.op === "read") w.read(c, this.side);
      else if (this.op === "halfClose") w.halfClose(c, this.side);
      else if (this.op === "close") w.close(c, this.side);
      else w.abort(c, this.side);
    });
  }
  toString = (): string =>
    `${this.op}(${this.i}, ${this.side}${this.op === "write" ? `, ${this.len}` : ""})`;
}
class DeliverCmd implements Cmd {
  readonly toAgent: boolean;
  readonly n: number;
  constructor(toAgent: boolean, n: number) {
    this.toAgent = toAgent;
    this.n = n;
  }
  check = (): boolean => true;
  async run(_m: object, w: World): Promise<void> {
    await step(w, async () => {
      w.deliver(this.toAgent, this.n);
    });
  }
  toString = (): string => `deliver(${this.toAgent ? "->agent" : "->server"}, ${this.n})`;
}
/** A bulk transfer with no time passing: write, then read and deliver until it has all arrived. */
class BulkCmd implements Cmd {
  readonly i: number;
  readonly side: 0 | 1;
  readonly len: number;
  constructor(i: number, side: 0 | 1, len: number) {
    this.i = i;
    this.side = side;
    this.len = len;
  }
  check = (): boolean => true;
  async run(_m: object, w: World): Promise<void> {
    await step(w, async () => {
      const c = pickConn(w, this.i);
      const from = c?.sides[this.side];
      const to = c?.sides[1 - this.side];
      if (!c || !from || !to) return;
      w.write(c, this.side, this.len);
      for (let round = 0; round < 200 && to.rOff < from.wOff && !w.dead; round++) {
        w.read(c, (1 - this.side) as 0 | 1);
        w.deliver(true, 1000);
        w.deliver(false, 1000);
        await settle();
        if (to.readDone || to.readError !== undefined) break;
      }
    });
  }
  toString = (): string => `bulk(${this.i}, ${this.side}, ${this.len})`;
}

class TickCmd implements Cmd {
  readonly ms: number;
  constructor(ms: number) {
    this.ms = ms;
  }
  check = (): boolean => true;
  async run(_m: object, w: World): Promise<void> {
    await step(w, async () => {
      w.clock.advance(this.ms);
    });
  }
  toString = (): string => `tick(${this.ms})`;
}
class KeepaliveLossCmd implements Cmd {
  check = (): boolean => true;
  async run(_m: object, w: World): Promise<void> {
    await step(w, async () => {
      // Nothing is delivered while a whole interval and timeout pass: both ends must give up.
      w.clock.advance(INTERVAL + KA_TIMEOUT + 1);
      await settle();
      assert.notEqual(w.server.state, "open", "server session survived keepalive loss");
      assert.notEqual(w.agent.state, "open", "agent session survived keepalive loss");
    });
  }
  toString = (): string => "keepaliveLoss()";
}

const commands = [
  fc.constantFrom("acc", "acc", "ref", "hang").map((k) => new DialCmd(k as Dial["kind"])),
  fc.nat(20).map((i) => new CancelCmd(i)),
  fc
    .tuple(
      fc.constantFrom("write", "write", "read", "read", "halfClose", "close", "abort"),
      fc.nat(10),
      fc.constantFrom(0 as const, 1 as const),
      fc.integer({ min: 1, max: 3000 }),
    )
    .map(([op, i, side, len]) => new ConnCmd(op as ConnCmd["op"], i, side, len)),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 8 })).map(([t, n]) => new DeliverCmd(t, n)),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 8 })).map(([t, n]) => new DeliverCmd(t, n)),
  fc.integer({ min: 1, max: 100 }).map((ms) => new TickCmd(ms)),
  fc
    .tuple(fc.nat(10), fc.constantFrom(0 as const, 1 as const), fc.integer({ min: 1, max: 20_000 }))
    .map(([i, side, len]) => new BulkCmd(i, side, len)),
  // Keepalive loss ends the world, so it is rare.
  fc.integer({ min: 0, max: 24 }).map((i) => (i === 0 ? new KeepaliveLossCmd() : new TickCmd(i))),
  fc
    .tuple(fc.nat(10), fc.constantFrom(0 as const, 1 as const))
    .map(([i, side]) => new ConnCmd("read", i, side, 0)),
];

describe("konnectivity session: model-based (fc.commands)", () => {
  it("every interleaving keeps ids unique, data exact, buffers bounded, and leaks nothing", async () => {
    const cover = { runs: 0, conns: 0, bytes: 0, cancels: 0, deaths: 0, grew: 0 };
    const res = await fc.check(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 80, size: "max" }), async (cmds) => {
        const w = new World();
        await fc.asyncModelRun(() => ({ model: {}, real: w }), cmds);
        const diedDuringRun = w.dead;
        await w.finish();
        cover.runs++;
        cover.conns += w.conns.size;
        cover.cancels += w.dials.filter((d) => d.cancelled).length;
        if (diedDuringRun) cover.deaths++;
        if (w.grew) cover.grew++;
        for (const c of w.conns.values()) for (const x of c.sides) cover.bytes += x?.rOff ?? 0;
      }),
      { numRuns: 300 },
    );
    if (res.failed) {
      assert.fail(
        `seed ${res.seed}, path ${(res as { path?: string }).path}: ${res.errorInstance}\n${String(res.counterexample?.[0])}`,
      );
    }
    // The generator must actually reach the interesting states.
    assert.ok(cover.runs >= 300, `only ${cover.runs} runs`);
    assert.ok(cover.conns >= 100, `only ${cover.conns} connections`);
    assert.ok(cover.bytes >= 10_000, `only ${cover.bytes} bytes`);
    assert.ok(cover.cancels >= 100 && cover.deaths >= 5, JSON.stringify(cover));
    assert.ok(
      cover.grew >= 5,
      `window auto-tuning reached in only ${cover.grew} runs: ${JSON.stringify(cover)}`,
    );
  });
});
