/**
 * A TCP proxy on 127.0.0.1 for fault injection: it relays bytes between a
 * client and a target, can cut every connection with a reset (a crash or a cut
 * cable), and can rewrite bytes in transit.
 */
import * as net from "node:net";

export interface TcpProxy {
  readonly port: number;
  /** Reset every relayed connection, both sides. */
  killAll(): void;
  /** Live relayed connection pairs. */
  readonly live: number;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /** Rewrite client->target bytes (offset is the stream offset of the chunk). */
  upstream?: (chunk: Uint8Array, offset: number) => Uint8Array;
  /** Rewrite target->client bytes. */
  downstream?: (chunk: Uint8Array, offset: number) => Uint8Array;
}

function reset(s: net.Socket): void {
  if (s.destroyed) return;
  if (s.connecting) s.destroy();
  else s.resetAndDestroy();
}

export function startTcpProxy(
  target: { host: string; port: number },
  opts: TcpProxyOptions = {},
): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const done = (): void => {
      reset(client);
      reset(upstream);
      pairs.delete(pair);
    };
    client.on("error", done);
    upstream.on("error", done);
    client.on("close", () => {
      if (upstream.destroyed) pairs.delete(pair);
    });
    upstream.on("close", () => {
      if (client.destroyed) pairs.delete(pair);
    });
    const relay = (
      from: net.Socket,
      to: net.Socket,
      rewrite?: (c: Uint8Array, o: number) => Uint8Array,
    ): void => {
      let offset = 0;
      from.on("data", (c: Buffer) => {
        const out = rewrite ? rewrite(c, offset) : c;
        offset += c.length;
        if (!to.write(out)) {
          from.pause();
          to.once("drain", () => from.resume());
        }
      });
      from.on("end", () => to.end());
    };
    upstream.once("connect", () => {
      relay(client, upstream, opts.upstream);
      relay(upstream, client, opts.downstream);
      client.resume();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        killAll(): void {
          for (const [a, b] of pairs) {
            reset(a);
            reset(b);
          }
          pairs.clear();
        },
        get live(): number {
          return pairs.size;
        },
        close: () =>
          new Promise<void>((r) => {
            for (const [a, b] of pairs) {
              a.destroy();
              b.destroy();
            }
            server.close(() => r());
          }),
      });
    });
  });
}
