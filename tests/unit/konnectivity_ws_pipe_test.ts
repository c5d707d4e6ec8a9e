/** The `ws` adapter: framing rules and how the WebSocket's end maps to the session's. */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import WebSocket, { WebSocketServer } from "ws";
import { ChannelResetError, ProtocolError } from "../../src/channel/errors.ts";
import { GoAwayCode, KonnectivitySession, wsPipe } from "../../src/konnectivity/mod.ts";
import { AGENT_ID, SERVER_ID } from "../_harness/konnectivity_pairs.ts";

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
await new Promise<void>((r) => wss.once("listening", () => r()));
const port = (wss.address() as { port: number }).port;
after(async () => {
  for (const c of wss.clients) c.terminate();
  await new Promise<void>((r) => wss.close(() => r()));
});

async function sockets(): Promise<[WebSocket, WebSocket]> {
  const accepted = new Promise<WebSocket>((r) => wss.once("connection", (ws) => r(ws)));
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  await new Promise<void>((resolve, reject) => {
    client.once("open", () => resolve());
    client.once("error", reject);
  });
  return [client, await accepted];
}

describe("konnectivity ws pipe", () => {
  it("a text message is a protocol error that ends the session", async () => {
    const [client, server] = await sockets();
    const s = new KonnectivitySession(wsPipe(server), { peer: AGENT_ID, role: "server" });
    client.send("hello, not a packet");
    const info = await s.closed;
    assert.ok(info.error instanceof ProtocolError, `${info.error}`);
    client.terminate();
  });

  it("a binary message that is not a packet gets GO_AWAY{PROTOCOL_ERROR} back", async () => {
    const [client, server] = await sockets();
    const s = new KonnectivitySession(wsPipe(server), { peer: AGENT_ID, role: "server" });
    const closeCode = new Promise<number>((r) => client.once("close", (code) => r(code)));
    client.send(new Uint8Array([0xff, 0xff, 0xff]), { binary: true });
    const info = await s.closed;
    assert.ok(info.error instanceof ProtocolError);
    assert.equal(info.goAway?.code, GoAwayCode.PROTOCOL_ERROR);
    assert.equal(await closeCode, 1000, "GO_AWAY, then a clean WebSocket close");
  });

  it("close() on one side: the other sees GO_AWAY{NO_ERROR} from its peer", async () => {
    const [client, server] = await sockets();
    const a = new KonnectivitySession(wsPipe(client), { peer: AGENT_ID, role: "server" });
    const b = new KonnectivitySession(wsPipe(server), { peer: SERVER_ID, role: "agent" });
    a.close();
    const info = await b.closed;
    assert.equal(info.goAway?.code, GoAwayCode.NO_ERROR);
    assert.equal(info.goAway?.fromPeer, true);
    await a.closed;
  });

  it("a terminated WebSocket (no GO_AWAY) ends the peer's session with CHANNEL_RESET", async () => {
    const [client, server] = await sockets();
    const b = new KonnectivitySession(wsPipe(server), { peer: SERVER_ID, role: "agent" });
    client.terminate();
    const info = await b.closed;
    assert.ok(info.error instanceof ChannelResetError, `${info.error}`);
    assert.equal(info.goAway, undefined);
  });

  it("wsPipe refuses a socket that is not open", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const failed = new Promise<void>((r) => ws.once("error", () => r()));
    assert.throws(() => wsPipe(ws), TypeError);
    ws.terminate(); // before the handshake: ws reports an error event, which we wait for
    await failed;
  });
});
