/**
 * Every bench case, in table order.
 *
 * Case ids (peers refer to them across groups):
 * tcp.spokewire, tcp.node-net, tcp.deno-connect; tls.spokewire, tls.node-tls;
 * ssh.spokewire, ssh.ssh2, ssh.openssh; konnectivity.dial, konnectivity.connect,
 * konnectivity.ws-tls, konnectivity.yamux; e2e.tls-over-tcp, e2e.tls-over-ssh,
 * e2e.tls-over-konnectivity; relay.socat.
 *
 * @module
 */
import type { BenchCase } from "../types.ts";
import { cases as konnectivity } from "./konnectivity.ts";
import { cases as socat } from "./socat.ts";
import { cases as ssh } from "./ssh.ts";
import { cases as tcp } from "./tcp.ts";
import { cases as tls } from "./tls.ts";

/** All cases; the e2e rows live with the tunnel they ride on (ssh.ts, konnectivity.ts, tls.ts). */
export const allCases: readonly BenchCase[] = [...tcp, ...tls, ...ssh, ...konnectivity, ...socat];
