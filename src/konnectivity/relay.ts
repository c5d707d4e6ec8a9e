/**
 * The agent side's minimal dial hook: dial the requested TCP address and relay
 * bytes between it and the tunneled connection. Part 2 (the agent) builds on it.
 *
 * @module
 */

import type { Channel, Dialer } from "../channel/types.ts";
import type { TcpTarget } from "../tcp/tcp.ts";
import type { DialHandler } from "./session.ts";

/** Options of {@link relayDialHandler}. */
export interface RelayDialHandlerOptions {
  /**
   * Refuse targets this returns false for, given the dial's caller (absent when
   * anonymous); the refusal message goes to the peer. Default: allow all.
   */
  readonly allow?: (target: { host: string; port: number }, caller?: string) => boolean;
  /** Told about each dial `allow` refused. Default: nothing. */
  readonly onRefused?: (refusal: DialRefusal) => void;
}

/** A dial the agent's allow-list refused. */
export interface DialRefusal {
  /** Whom the server dialed for; absent for an anonymous caller. */
  readonly caller?: string;
  /** The requested `host:port`. */
  readonly address: string;
}

/**
 * Parse `"host:port"` or `"[v6]:port"`. Throws `TypeError` for anything else.
 *
 * @example
 * ```ts
 * import { parseDialAddress } from "./relay.ts";
 * const t = parseDialAddress("[::1]:443");
 * if (t.host !== "::1" || t.port !== 443) throw new Error("parse");
 * ```
 */
export function parseDialAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port < 1 || port > 65535) {
    throw new TypeError(
      `address must be host:port with a port in [1, 65535], got ${JSON.stringify(address)}`,
    );
  }
  return { host: m[1] ?? m[2], port };
}

/**
 * Copy bytes both ways between two channels until both directions end. A
 * half-close on one side becomes a half-close on the other; an error on either
 * side aborts the other. Resolves when both directions are done.
 */
export async function relayTunnel(a: Channel, b: Channel): Promise<void> {
  const one = (from: Channel, to: Channel): Promise<void> =>
    from.readable.pipeTo(to.writable).catch((err) => {
      from.abort(err);
      to.abort(err);
    });
  await Promise.all([one(a, b), one(b, a)]);
}

/**
 * A {@link DialHandler} for an agent: dial the requested address over TCP with
 * `dialer` (honouring the peer's cancel through `IncomingDial.signal`), then
 * accept and relay. Only protocol `"tcp"` is served.
 *
 * @example
 * ```ts ignore
 * import { KonnectivitySession, relayDialHandler, TcpDialer, wsPipe } from "spokewire";
 * new KonnectivitySession(wsPipe(ws), { peer, role: "agent", onDial: relayDialHandler(new TcpDialer()) });
 * ```
 */
export function relayDialHandler(
  dialer: Dialer<TcpTarget>,
  options: RelayDialHandlerOptions = {},
): DialHandler {
  return async (d) => {
    if (d.protocol !== "tcp")
      throw new Error(`protocol ${JSON.stringify(d.protocol)} is not served`);
    const target = parseDialAddress(d.address);
    if (options.allow && !options.allow(target, d.caller)) {
      options.onRefused?.(
        d.caller === undefined ? { address: d.address } : { caller: d.caller, address: d.address },
      );
      const who = d.caller === undefined ? "an anonymous caller" : JSON.stringify(d.caller);
      throw new Error(`${d.address} is not allowed for ${who}`);
    }
    const tcp = await dialer.dial(target, { signal: d.signal });
    let tunnel: Channel;
    try {
      tunnel = d.accept();
    } catch (err) {
      tcp.abort(err);
      throw err;
    }
    relayTunnel(tunnel, tcp);
  };
}
