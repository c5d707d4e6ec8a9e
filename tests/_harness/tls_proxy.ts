/**
 * A TCP proxy on 127.0.0.1 for the TLS tests: plain relay (to cut a
 * connection from the middle), or a man in the middle that terminates TLS with
 * its own certificate and re-encrypts to the real server.
 *
 * @module
 */

import * as net from "node:net";
import * as tls from "node:tls";

/** A running proxy. */
export interface TcpProxy {
  readonly port: number;
  /** Reset both legs of the connection whose client-side port is `clientPort`. */
  kill(clientPort: number): void;
  close(): Promise<void>;
}

function reset(s: net.Socket): void {
  if (s.destroyed) return;
  if (typeof s.resetAndDestroy === "function") s.resetAndDestroy();
  else s.destroy();
}

/** Relay bytes to `target`, unchanged. */
export function startRelay(target: { host: string; port: number }): Promise<TcpProxy> {
  const legs = new Map<number, [net.Socket, net.Socket]>();
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    const up = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const key = down.remotePort ?? 0;
    legs.set(key, [down, up]);
    const drop = (): void => {
      legs.delete(key);
    };
    down.on("error", () => reset(up));
    up.on("error", () => reset(down));
    down.on("close", drop);
    down.pipe(up);
    up.pipe(down);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        kill(clientPort: number): void {
          const l = legs.get(clientPort);
          if (!l) throw new Error(`no proxied connection from port ${clientPort}`);
          reset(l[0]);
          reset(l[1]);
        },
        close: () =>
          new Promise<void>((res) => {
            for (const [a, b] of legs.values()) {
              reset(a);
              reset(b);
            }
            server.close(() => res());
          }),
      });
    });
  });
}

/**
 * A man in the middle: accepts TLS with `cert`/`key` (not trusted by the
 * victim), and relays the plaintext to the real server over TLS. Counts the
 * TCP connections it took.
 */
export function startMitm(
  target: { host: string; port: number },
  creds: { cert: string; key: string; clientCert?: string; clientKey?: string },
): Promise<TcpProxy & { intercepted(): number }> {
  let intercepted = 0;
  const socks = new Set<net.Socket>();
  const server = tls.createServer(
    { cert: creds.cert, key: creds.key, allowHalfOpen: true },
    (down) => {
      socks.add(down);
      const up = tls.connect({
        host: target.host,
        port: target.port,
        rejectUnauthorized: false,
        cert: creds.clientCert,
        key: creds.clientKey,
      });
      socks.add(up);
      down.on("error", () => up.destroy());
      up.on("error", () => down.destroy());
      down.pipe(up);
      up.pipe(down);
    },
  );
  server.on("tlsClientError", () => {});
  server.on("connection", () => {
    intercepted++;
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        intercepted: () => intercepted,
        kill(): void {
          for (const s of socks) s.destroy();
        },
        close: () =>
          new Promise<void>((res) => {
            for (const s of socks) s.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}
