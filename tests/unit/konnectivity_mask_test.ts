/**
 * The agent's WebSocket masking keys (issue 26 step 3; SPEC.md section 1, "Masking").
 *
 * - A real agent offers `x-spokewire-zero-mask`. Against a raw mutual-TLS server that
 *   grants it, every frame the agent sends is still masked, with the key 00 00 00 00;
 *   against one that does not, every key is random (none zero, no two alike). An agent
 *   that skips server verification does not offer, and an agent that was granted what it
 *   did not offer (or any other extension) fails the upgrade with PROTOCOL_ERROR.
 * - The real server grants the offer only to an agent that authenticated with a client
 *   certificate on the TLS connection itself: never without an offer, never to a token
 *   agent. Granted or not, it takes frames masked with any key, and an unmasked frame is
 *   still a protocol error (close 1002).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import tls from "node:tls";
import type { SpokewireError } from "../../src/channel/errors.ts";
import { type AgentState, KonnectivityAgent } from "../../src/konnectivity/agent.ts";
import { decodePacket, encodePacket } from "../../src/konnectivity/codec.ts";
import { type Packet, PacketType } from "../../src/konnectivity/packet.ts";
import {
  offersZeroMask,
  webSocketAcceptKey,
  ZERO_MASK_EXTENSION,
} from "../../src/konnectivity/ws_upgrade.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { within } from "../_harness/bounded.ts";
import { Cluster, FAST_AGENT_CONFIG } from "../_harness/konnectivity_cluster.ts";

const pki = makeTestPki();
after(() => pki.cleanup());

const STEP_TIMEOUT_MS = 15_000;
/** PINGs the raw server sends; the agent answers each with a PONG frame of its own. */
const PINGS = 16;

// ---- frames, by hand ----------------------------------------------------------------

interface Frame {
  readonly opcode: number;
  /** The masking key, or undefined for an unmasked frame. */
  readonly key: Buffer | undefined;
  /** Unmasked payload. */
  readonly payload: Buffer;
}

function parseFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    const opcode = buf[at] & 0x0f;
    const masked = (buf[at + 1] & 0x80) !== 0;
    let len = buf[at + 1] & 0x7f;
    let p = at + 2;
    if (len === 126) {
      if (buf.length < p + 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length < p + 8) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (masked && buf.length < p + 4) break;
    const key = masked ? Buffer.from(buf.subarray(p, p + 4)) : undefined;
    if (masked) p += 4;
    if (buf.length < p + len) break;
    const payload = Buffer.from(buf.subarray(p, p + len));
    if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i % 4];
    frames.push({ opcode, key, payload });
    at = p + len;
  }
  return { frames, rest: Buffer.from(buf.subarray(at)) };
}

/** A binary frame carrying `packet`: unmasked (`key` undefined) or masked with `key`. */
function frame(packet: Packet, key?: Uint8Array): Buffer {
  const payload = Buffer.from(encodePacket(packet));
  assert.ok(payload.length < 126);
  if (!key) return Buffer.concat([Buffer.from([0x82, payload.length]), payload]);
  for (let i = 0; i < payload.length; i++) payload[i] ^= key[i % 4];
  return Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), key, payload]);
}

/** Collects the frames `socket` receives (after `initial`). */
class FrameReader {
  readonly frames: Frame[] = [];
  #buf: Buffer;
  #wake: (() => void) | undefined;
  #ended = false;
  constructor(socket: tls.TLSSocket, initial: Buffer) {
    this.#buf = initial;
    this.#parse();
    socket.on("data", (b: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, b]);
      this.#parse();
    });
    socket.once("close", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.resume();
  }
  #parse(): void {
    const { frames, rest } = parseFrames(this.#buf);
    this.#buf = rest;
    this.frames.push(...frames);
    this.#wake?.();
  }
  /** Resolves once a frame matches `pred`, or rejects if the connection ends first. */
  async until(pred: (f: Frame) => boolean): Promise<Frame> {
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.#ended) throw new Error("the connection ended first");
      await new Promise<void>((r) => {
        this.#wake = r;
      });
    }
  }
}

/** Read an HTTP head off `socket`; resolves with its text and the bytes after it. */
function readHead(socket: tls.TLSSocket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.pause();
      resolve({ head: buf.subarray(0, end).toString("latin1"), rest: buf.subarray(end + 4) });
    };
    const onClose = (): void => reject(new Error("the connection ended before a head"));
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/** The value of header `name` in `head`, or undefined. */
function header(head: string, name: string): string | undefined {
  for (const line of head.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (line.slice(0, i).trim().toLowerCase() === name) return line.slice(i + 1).trim();
  }
  return undefined;
}

const isPong = (opaque: number) => (f: Frame) => {
  if (f.opcode !== 0x2) return false;
  const p = decodePacket(f.payload);
  return p.type === PacketType.PONG && p.opaque === opaque;
};

// ---- the agent's side -----------------------------------------------------------------

describe("the agent's masking keys", () => {
  /** A raw mutual-TLS server; `answer` writes the 101 (or anything) for the agent's head. */
  async function rawServer(): Promise<{
    port: number;
    accepted: Promise<tls.TLSSocket>;
    close(): Promise<void>;
  }> {
    const sockets = new Set<tls.TLSSocket>();
    let onSocket: (s: tls.TLSSocket) => void = () => {};
    const accepted = new Promise<tls.TLSSocket>((resolve) => {
      onSocket = resolve;
    });
    const server = tls.createServer(
      {
        ca: pki.ca.cert,
        cert: pki.server.cert,
        key: pki.server.key,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (s) => {
        sockets.add(s);
        s.on("error", () => {});
        onSocket(s);
      },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    return {
      port: (server.address() as { port: number }).port,
      accepted,
      async close() {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  function startAgent(
    port: number,
    extra: { skipVerification?: boolean; states?: [AgentState, SpokewireError | undefined][] },
  ): KonnectivityAgent {
    const agent = new KonnectivityAgent({
      server: { host: "127.0.0.1", port, name: "localhost" },
      credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
      ...(extra.skipVerification
        ? { tls: { dangerouslySkipVerification: true, logger: { warn: () => {} } } }
        : {}),
      allow: ["127.0.0.1:*"],
      // One attempt is enough; no reconnect while the test reads.
      config: { ...FAST_AGENT_CONFIG, minBackoffMs: 60_000, maxBackoffMs: 60_000 },
      onStateChange: (s, e) => extra.states?.push([s, e]),
    });
    agent.start();
    return agent;
  }

  async function upgrade(socket: tls.TLSSocket, extensions: string | undefined) {
    const { head, rest } = await within(readHead(socket), STEP_TIMEOUT_MS, "upgrade request");
    const key = header(head, "sec-websocket-key") ?? "";
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${await webSocketAcceptKey(key)}\r\n` +
        (extensions === undefined ? "" : `Sec-WebSocket-Extensions: ${extensions}\r\n`) +
        "\r\n",
    );
    return { head, rest };
  }

  for (const granted of [true, false]) {
    const what = granted
      ? "granted: every frame masked with the key 00 00 00 00"
      : "not granted: every frame masked with a fresh random key";
    it(what, async () => {
      const raw = await rawServer();
      const agent = startAgent(raw.port, {});
      try {
        const socket = await within(raw.accepted, STEP_TIMEOUT_MS, "agent connects");
        const { head, rest } = await upgrade(socket, granted ? ZERO_MASK_EXTENSION : undefined);
        assert.equal(header(head, "sec-websocket-extensions"), ZERO_MASK_EXTENSION);
        const reader = new FrameReader(socket, rest);
        for (let i = 1; i <= PINGS; i++) socket.write(frame({ type: PacketType.PING, opaque: i }));
        await within(reader.until(isPong(PINGS)), STEP_TIMEOUT_MS, "the agent's PONGs");
        for (let i = 1; i <= PINGS; i++) await reader.until(isPong(i));
        const keys = reader.frames.map((f) => f.key?.toString("hex"));
        // The agent's own PING at session start, then a PONG for each of ours.
        assert.ok(keys.length > PINGS, `${keys.length} frames`);
        assert.ok(
          keys.every((k) => k !== undefined),
          "every frame from the agent is masked",
        );
        if (granted) {
          assert.deepEqual(new Set(keys), new Set(["00000000"]));
        } else {
          assert.ok(!keys.includes("00000000"), `a zero key among ${keys.join(" ")}`);
          assert.equal(new Set(keys).size, keys.length, `a key repeated: ${keys.join(" ")}`);
        }
      } finally {
        await agent.close();
        await raw.close();
      }
    });
  }

  it("an agent that skips server verification does not offer zero keys", async () => {
    const raw = await rawServer();
    const agent = startAgent(raw.port, { skipVerification: true });
    try {
      const socket = await within(raw.accepted, STEP_TIMEOUT_MS, "agent connects");
      const { head, rest } = await upgrade(socket, undefined);
      assert.equal(header(head, "sec-websocket-extensions"), undefined);
      const reader = new FrameReader(socket, rest);
      socket.write(frame({ type: PacketType.PING, opaque: 1 }));
      await within(reader.until(isPong(1)), STEP_TIMEOUT_MS, "the agent's PONG");
      assert.ok(reader.frames.every((f) => f.key && f.key.readUInt32BE(0) !== 0));
    } finally {
      await agent.close();
      await raw.close();
    }
  });

  for (const [answer, skip] of [
    [ZERO_MASK_EXTENSION, true],
    ["permessage-deflate", false],
    [`${ZERO_MASK_EXTENSION}; bits=0`, false],
  ] as const) {
    const offered = skip ? "not offered" : "offered";
    it(`a 101 naming ${JSON.stringify(answer)} (zero keys ${offered}) fails with PROTOCOL_ERROR`, async () => {
      const raw = await rawServer();
      const states: [AgentState, SpokewireError | undefined][] = [];
      const agent = startAgent(raw.port, { skipVerification: skip, states });
      try {
        const socket = await within(raw.accepted, STEP_TIMEOUT_MS, "agent connects");
        await upgrade(socket, answer);
        const closed = new Promise<void>((r) => socket.once("close", () => r()));
        socket.resume();
        await within(closed, STEP_TIMEOUT_MS, "the agent drops the connection");
        const backoff = states.find(([s]) => s === "backoff");
        assert.equal(backoff?.[1]?.code, "PROTOCOL_ERROR", String(backoff?.[1]));
      } finally {
        await agent.close();
        await raw.close();
      }
    });
  }
});

// ---- the server's side ----------------------------------------------------------------

describe("offersZeroMask reads a Sec-WebSocket-Extensions request value", () => {
  const cases: [string | undefined, boolean][] = [
    [undefined, false],
    ["", false],
    ["x-spokewire-zero-mask", true],
    ["X-Spokewire-Zero-Mask", true],
    [" permessage-deflate; client_max_window_bits, x-spokewire-zero-mask ", true],
    ["x-spokewire-zero-mask, permessage-deflate", true],
    ["x-spokewire-zero-mask; bits=0", false],
    ["x-spokewire-zero-masks", false],
    ["permessage-deflate", false],
  ];
  for (const [value, want] of cases) {
    it(`${JSON.stringify(value)} -> ${want}`, () => assert.equal(offersZeroMask(value), want));
  }
});

describe("the server's grant of zero keys", () => {
  /** A raw agent (certificate or token) that upgrades, offering zero keys or not. */
  async function rawAgent(
    c: Cluster,
    o: { cert: boolean; offer: boolean },
  ): Promise<{ socket: tls.TLSSocket; head: string; reader: FrameReader }> {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: c.server.port,
      ca: pki.ca.cert,
      ...(o.cert ? { cert: pki.client.cert, key: pki.client.key } : {}),
      servername: "localhost",
    });
    socket.on("error", () => {});
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", () => resolve());
        socket.once("error", reject);
      }),
      STEP_TIMEOUT_MS,
      "TLS handshake",
    );
    socket.write(
      "GET /konnectivity/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        "Sec-WebSocket-Version: 13\r\n" +
        (o.offer ? `Sec-WebSocket-Extensions: ${ZERO_MASK_EXTENSION}\r\n` : "") +
        (o.cert ? "" : `x-konnectivity-agent-id: agent-t\r\nAuthorization: Bearer ${TOKEN}\r\n`) +
        "\r\n",
    );
    const { head, rest } = await within(readHead(socket), STEP_TIMEOUT_MS, "upgrade answer");
    assert.match(head, /^HTTP\/1\.1 101 /);
    return { socket, head, reader: new FrameReader(socket, rest) };
  }

  const TOKEN = "token-t-0123456789";
  const withCluster = async (fn: (c: Cluster) => Promise<void>): Promise<void> => {
    const c = await Cluster.start(
      { agentToken: (id) => (id === "agent-t" ? TOKEN : undefined) },
      pki,
    );
    try {
      await fn(c);
    } finally {
      await c.server.close();
    }
  };

  const cases = [
    { cert: true, offer: true, granted: true },
    { cert: true, offer: false, granted: false },
    { cert: false, offer: true, granted: false },
  ];
  for (const { cert, offer, granted } of cases) {
    const who = `${cert ? "a certificate" : "a token"} agent ${offer ? "offering" : "not offering"}`;
    it(`${who}: ${granted ? "granted" : "not granted"}; any masking key is taken`, async () => {
      await withCluster(async (c) => {
        const { socket, head, reader } = await rawAgent(c, { cert, offer });
        try {
          assert.equal(
            header(head, "sec-websocket-extensions"),
            granted ? ZERO_MASK_EXTENSION : undefined,
          );
          // Zero, random and a fixed key: the server answers each PING.
          const keys = [new Uint8Array(4), randomBytes(4), Uint8Array.of(1, 2, 3, 4)];
          for (const [i, key] of keys.entries()) {
            socket.write(frame({ type: PacketType.PING, opaque: i + 1 }, key));
            const pong = await within(reader.until(isPong(i + 1)), STEP_TIMEOUT_MS, "PONG");
            assert.equal(pong.key, undefined, "the server's frames are not masked");
          }
        } finally {
          socket.destroy();
        }
      });
    });
  }

  it("granted or not, an unmasked frame from the agent is closed with 1002", async () => {
    await withCluster(async (c) => {
      for (const offer of [true, false]) {
        const { socket, reader } = await rawAgent(c, { cert: true, offer });
        try {
          socket.write(frame({ type: PacketType.PING, opaque: 1 }));
          const close = await within(
            reader.until((f) => f.opcode === 0x8),
            STEP_TIMEOUT_MS,
            "close frame",
          );
          assert.equal(close.payload.readUInt16BE(0), 1002);
        } finally {
          socket.destroy();
        }
      }
    });
  });
});
