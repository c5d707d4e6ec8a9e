/**
 * Bench cases: TLS. spokewire mutual TLS (dialer and listener, the peer verified on
 * both sides) beside raw `node:tls` mutual TLS with the same certificates and the
 * same suite; and the TLS-to-a-kubelet baseline, that TLS over plain TCP (its tunnel
 * rows are in ssh.ts and konnectivity.ts).
 *
 * @module
 */
import type { AddressInfo } from "node:net";
import { createServer, type TLSSocket, connect as tlsConnect } from "node:tls";
import { benchPki } from "../certs.ts";
import { channelConn, duplexConn } from "../conn.ts";
import { BENCH_TLS_SUITE, kubeletClient, startKubelet } from "../kubelet.ts";
import { serveTarget } from "../target.ts";
import type { BenchCase, Path } from "../types.ts";

async function spokewirePath(): Promise<Path> {
  const kubelet = await startKubelet();
  const client = await kubeletClient();
  return {
    open: async () => channelConn(await client.dial(kubelet.port)),
    close: () => kubelet.close(),
  };
}

const spokewire: BenchCase = {
  id: "tls.spokewire",
  group: "TLS",
  label: "spokewire mTLS",
  peer: "tls.node-tls",
  start: spokewirePath,
};

const nodeTls: BenchCase = {
  id: "tls.node-tls",
  group: "TLS",
  label: "node:tls mTLS",
  async start(): Promise<Path> {
    const pki = await benchPki();
    const server = createServer({
      cert: pki.server.cert,
      key: pki.server.key,
      ca: pki.ca,
      requestCert: true,
      rejectUnauthorized: true,
      ciphers: BENCH_TLS_SUITE,
      minVersion: "TLSv1.3",
    });
    server.on("secureConnection", (s: TLSSocket) => {
      s.setNoDelay(true);
      s.on("error", () => {});
      void serveTarget(duplexConn(s)).catch(() => s.destroy());
    });
    server.on("tlsClientError", () => {});
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as AddressInfo).port;
    return {
      open: () =>
        new Promise((resolve, reject) => {
          const s = tlsConnect({
            host: "127.0.0.1",
            port,
            servername: "localhost",
            ca: pki.ca,
            cert: pki.client.cert,
            key: pki.client.key,
            ciphers: BENCH_TLS_SUITE,
            minVersion: "TLSv1.3",
          });
          s.once("secureConnect", () => {
            s.off("error", reject);
            s.setNoDelay(true);
            resolve(duplexConn(s));
          });
          s.once("error", reject);
        }),
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  },
};

const overTcp: BenchCase = {
  id: "e2e.tls-over-tcp",
  group: "TLS to a kubelet",
  label: "kubelet TLS over TCP",
  alsoVs: ["tls.node-tls"],
  start: spokewirePath,
};

/** The TLS rows and the TLS-to-a-kubelet baseline. */
export const cases: readonly BenchCase[] = [spokewire, nodeTls, overTcp];
