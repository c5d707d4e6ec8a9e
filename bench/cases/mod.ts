/**
 * Every bench case, in table order.
 *
 * Case ids (peers refer to them across groups):
 * tcp.spokewire, tcp.node-net, tcp.deno-connect; tls.spokewire, tls.node-tls;
 * ssh.spokewire, ssh.ssh2, ssh.openssh; konnectivity.dial, konnectivity.connect,
 * konnectivity.ws-tls, konnectivity.yamux; e2e.tls-over-tcp, e2e.tls-over-ssh,
 * e2e.tls-over-konnectivity; relay.socat; and the load rows (their own kind of result, the
 * "Load" table): load.burst-1000, load.burst-10000, load.storm.
 *
 * @module
 */
import type { AnyCase } from "../types.ts";
import { cases as konnectivity } from "./konnectivity.ts";
import { cases as load } from "./konnectivity_load.ts";
import { cases as socat } from "./socat.ts";
import { cases as ssh } from "./ssh.ts";
import { cases as tcp } from "./tcp.ts";
import { cases as tls } from "./tls.ts";

/**
 * All cases; the e2e rows live with the tunnel they ride on (ssh.ts, konnectivity.ts,
 * tls.ts); the load rows come last.
 */
export const allCases: readonly AnyCase[] = [
  ...tcp,
  ...tls,
  ...ssh,
  ...konnectivity,
  ...socat,
  ...load,
];
