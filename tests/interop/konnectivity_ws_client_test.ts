/**
 * A plain `ws` client as the agent (the npm package with its default options: a fresh
 * random masking key per frame, a permessage-deflate offer), against the spokewire
 * server over mutual-TLS wss://: the upgrade names no extension (neither the zero-key
 * one it did not offer nor the deflate one the server does not speak), the agent
 * registers, and a dial through it carries 1 MiB each way intact. The server's zero-key
 * grant (SPEC.md section 1, "Masking") changes nothing for other clients.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { IncomingMessage } from "node:http";
import { after, describe, it } from "node:test";
import WebSocket from "ws";
import { relayDialHandler } from "../../src/konnectivity/relay.ts";
import { KonnectivitySession } from "../../src/konnectivity/session.ts";
import { wsPipe } from "../../src/konnectivity/ws_pipe.ts";
import { KONNECTIVITY_AGENT_PATH } from "../../src/konnectivity/ws_upgrade.ts";
import { TcpDialer } from "../../src/tcp/tcp.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { readAll, writeAll } from "../../src/testing/mod.ts";
import { seededBytes, within } from "../_harness/bounded.ts";
import { Cluster } from "../_harness/konnectivity_cluster.ts";

const pki = makeTestPki();
after(() => pki.cleanup());

const STEP_TIMEOUT_MS = 15_000;
const BYTES = 1024 * 1024;

describe("a plain ws client as the agent", () => {
  it("registers with random masking keys and carries a dial both ways", async () => {
    const c = await Cluster.start({}, pki);
    const { listener, port } = await c.target();
    void (async () => {
      for await (const ch of listener) ch.readable.pipeTo(ch.writable).catch(() => ch.abort());
    })();
    const ws = new WebSocket(`wss://127.0.0.1:${c.server.port}${KONNECTIVITY_AGENT_PATH}`, {
      ca: pki.ca.cert,
      cert: pki.client.cert,
      key: pki.client.key,
      maxPayload: 1024 * 1024,
    });
    let session: KonnectivitySession | undefined;
    try {
      const upgrade = new Promise<IncomingMessage>((resolve) => ws.once("upgrade", resolve));
      await within(
        new Promise<void>((resolve, reject) => {
          ws.once("open", () => resolve());
          ws.once("error", reject);
        }),
        STEP_TIMEOUT_MS,
        "ws open",
      );
      assert.equal((await upgrade).headers["sec-websocket-extensions"], undefined);
      session = new KonnectivitySession(wsPipe(ws), {
        peer: { scheme: "x509", id: "server", fingerprint: "" },
        role: "agent",
        config: { maxMessageSize: 1024 * 1024 },
        onDial: relayDialHandler(new TcpDialer()),
      });
      await c.server.waitForAgent("node-1", { timeoutMs: STEP_TIMEOUT_MS });
      const ch = await within(c.server.dial(`127.0.0.1:${port}`), STEP_TIMEOUT_MS, "dial");
      const data = seededBytes(BYTES, 26);
      const [, back] = await within(
        Promise.all([writeAll(ch, [data]), readAll(ch)]),
        STEP_TIMEOUT_MS,
        "1 MiB through the tunnel",
      );
      assert.equal(back.byteLength, BYTES);
      assert.ok(Buffer.from(back).equals(Buffer.from(data)), "the bytes came back intact");
      await ch.close();
    } finally {
      session?.close();
      ws.terminate();
      await c.close();
    }
  });
});
