/**
 * The peers' relays for the Konnectivity rows, what a user might run instead of
 * spokewire, each a mutual-TLS listener on 127.0.0.1 that relays every stream it is
 * handed to the TCP target:
 * - `ws`: a `ws` WebSocketServer on an `https` (node:tls) server with
 *   `requestCert`/`rejectUnauthorized`; one WebSocket connection per stream.
 * - `yamux`: a node:tls server; each TLS connection carries @chainsafe/libp2p-yamux and
 *   every yamux stream is relayed.
 *
 * The hop to the target is the runtime's fast TCP (node:net under Node, Deno.connect
 * under Deno), so the rows differ in the tunnel only.
 *
 * Run as a child process (so its CPU and memory are counted apart from the bench's):
 * `<runtime> konnectivity_relay.ts --konnectivity-relay ws|yamux <pki-dir> <target-port>`;
 * it prints `listening <port>` and runs until SIGTERM.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { createServer as createTlsServer } from "node:tls";
import { createWebSocketStream, WebSocketServer } from "ws";
import { type DenoConnLike, denoConn, duplexConn } from "../conn.ts";
import type { Conn } from "../types.ts";
import { yamuxConn, yamuxOver } from "./konnectivity_yamux.ts";

interface DenoNet {
  connect(o: {
    hostname: string;
    port: number;
  }): Promise<DenoConnLike & { setNoDelay(on: boolean): void }>;
}
const deno = (globalThis as { Deno?: DenoNet }).Deno;

/** The mutual-TLS material of a relay (PEM). */
export interface RelayTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** A running relay. */
export interface Relay {
  readonly port: number;
  close(): Promise<void>;
}

/** A TCP connection to the target on 127.0.0.1, with the runtime's fast TCP. */
async function targetConn(port: number): Promise<Conn> {
  if (deno) {
    const c = await deno.connect({ hostname: "127.0.0.1", port });
    c.setNoDelay(true);
    return denoConn(c);
  }
  const s = netConnect({ host: "127.0.0.1", port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    s.once("connect", () => resolve());
    s.once("error", reject);
  });
  return duplexConn(s);
}

/** Copy `from` to `to` until end-of-stream, then half-close `to`. */
async function pump(from: Conn, to: Conn, copy: boolean): Promise<void> {
  for (;;) {
    const c = await from.read();
    if (c === null) break;
    await to.write(copy ? c.slice() : c);
  }
  await to.end();
}

/** Relay one tunneled stream to the target, both ways; any failure tears both down. */
async function relay(tunnel: Conn, targetPort: number): Promise<void> {
  let target: Conn;
  try {
    target = await targetConn(targetPort);
  } catch {
    tunnel.destroy();
    return;
  }
  const fail = (): void => {
    tunnel.destroy();
    target.destroy();
  };
  // Deno's target Conn reads into one reused buffer: copy before queueing it elsewhere.
  await Promise.all([
    pump(tunnel, target, false).catch(fail),
    pump(target, tunnel, deno !== undefined).catch(fail),
  ]);
  tunnel.destroy();
  target.destroy();
}

function listening(server: {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): unknown;
}): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
  });
}

/** The hand-rolled WebSocket relay: wss:// with client certificates, one connection per stream. */
export async function startWsRelay(tls: RelayTls, targetPort: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const https = createHttpsServer({
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    requestCert: true,
    rejectUnauthorized: true,
  });
  https.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ server: https, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    void relay(duplexConn(createWebSocketStream(ws)), targetPort);
  });
  const port = await listening(https);
  return {
    port,
    close: async () => {
      wss.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => https.close(() => resolve()));
    },
  };
}

/** The yamux relay: node:tls with client certificates, yamux streams relayed. */
export async function startYamuxRelay(tls: RelayTls, targetPort: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const server = createTlsServer(
    { ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: true },
    (sock) => {
      sockets.add(sock);
      sock.once("close", () => sockets.delete(sock));
      yamuxOver(sock, "server", (s) => void relay(yamuxConn(s), targetPort));
    },
  );
  const port = await listening(server);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const [kind, dir, target] = argv;
  const read = (f: string): string => readFileSync(join(dir, f), "utf8");
  const tls: RelayTls = {
    ca: read("ca.pem"),
    cert: read("server.pem"),
    key: read("server-key.pem"),
  };
  const port = Number(target);
  const relay =
    kind === "ws"
      ? await startWsRelay(tls, port)
      : kind === "yamux"
        ? await startYamuxRelay(tls, port)
        : undefined;
  if (!relay) throw new Error(`konnectivity_relay: unknown kind ${kind}`);
  process.stdout.write(`listening ${relay.port}\n`);
  const stop = (): void => {
    void relay.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

const flag = process.argv.indexOf("--konnectivity-relay");
if (flag >= 0) {
  main(process.argv.slice(flag + 1)).catch((err: unknown) => {
    process.stderr.write(`konnectivity_relay: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
