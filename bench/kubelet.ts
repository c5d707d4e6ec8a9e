/**
 * The "kubelet" of the end-to-end rows: a spokewire mutual-TLS listener on 127.0.0.1
 * that serves the target protocol, and the client that verifies it, directly over TCP
 * or over any Channel (an SSH direct-tcpip channel, a Konnectivity stream).
 *
 * @module
 */
import { type Channel, listenTls, TlsDialer } from "../mod.ts";
import { benchPki } from "./certs.ts";
import { serveTargetOn } from "./target.ts";

/** The TLS 1.3 suite every TLS row uses, so rows compare the same cipher. */
export const BENCH_TLS_SUITE = "TLS_AES_128_GCM_SHA256";

/** A running kubelet stand-in. */
export interface Kubelet {
  readonly port: number;
  close(): Promise<void>;
}

/** Start the kubelet stand-in (mutual TLS, serving the target protocol). */
export async function startKubelet(): Promise<Kubelet> {
  const pki = await benchPki();
  const l = await listenTls(
    { host: "127.0.0.1", port: 0 },
    {
      credentials: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
      ciphers: BENCH_TLS_SUITE,
    },
  );
  serveTargetOn(l);
  const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
  return { port, close: () => l.close() };
}

/** The verifying client of the kubelet (client certificate, CA pinned, name "localhost"). */
export async function kubeletClient(): Promise<{
  dial(port: number): Promise<Channel>;
  over(channel: Channel): Promise<Channel>;
}> {
  const pki = await benchPki();
  const dialer = new TlsDialer({
    credentials: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key },
    ciphers: BENCH_TLS_SUITE,
  });
  return {
    dial: (port) => dialer.dial({ host: "127.0.0.1", port, name: "localhost" }),
    over: (channel) => dialer.connectOver(channel, "localhost"),
  };
}
