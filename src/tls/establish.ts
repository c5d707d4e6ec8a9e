/**
 * One TLS connection from transport to verified Channel: bounded handshake,
 * peer verification, the channel, and (client side) waiting for the server's
 * verdict on our certificate.
 *
 * The verdict: in TLS 1.3 the server judges the client's certificate after
 * the client has finished its handshake, so the client learns the outcome only
 * from what the server sends next:
 * - a **session ticket** (NewSessionTicket): accepted. OpenSSL and Go servers
 *   send tickets only after the client's certificate passed, and spokewire's
 *   own server holds its tickets back until its checks (chain, pins,
 *   authorizer) passed, then sends them. The dial resolves at once. Node
 *   reports the ticket (`'session'`); Deno's `node:tls` does not, so there the
 *   dialer watches the records arriving below TLS: the first one after the
 *   handshake that is large enough to be a ticket (an encrypted alert is 19
 *   bytes) counts as one.
 * - **data**: accepted, at once.
 * - an **alert or a hang-up** before either: refused, PEER_VERIFICATION_FAILED
 *   with reason `client-cert-refused` (`client-cert-missing` when we sent no
 *   certificate).
 * - nothing within `refusalWindowMs` (a server that sends no TLS 1.3 tickets,
 *   such as OpenSSL `-num_tickets 0`): taken as accepted.
 * - `refusalWindowMs` 0 (opt-in): the channel is handed out at once, and a close
 *   or failure before the server's first byte fails its first read or write with
 *   the same PEER_VERIFICATION_FAILED `client-cert-refused`.
 *
 * A server that sends tickets before it has judged the client (one that
 * checks the certificate in application code after the handshake and then
 * hangs up, without holding its tickets as spokewire's does) is taken as
 * accepting: its refusal then reaches the channel as CHANNEL_RESET, not as a
 * failed dial.
 *
 * @module
 */

import {
  type FirstEvent,
  type TlsContext,
  type TlsSession,
  type TlsTransport,
  tlsHandshake,
} from "../_runtime/tls.ts";
import { bounded } from "../_util/deadline.ts";
import type { ChannelConfig } from "../channel/config.ts";
import {
  DialError,
  PeerVerificationError,
  SpokewireError,
  TimeoutError,
} from "../channel/errors.ts";
import type { Channel } from "../channel/types.ts";
import { type EarlyEvent, SocketChannel } from "../tcp/socket_channel.ts";
import { HANGUP_CODES, reasonForRefusal } from "./verify_error.ts";
import { type PeerPolicy, verifyPeer } from "./verify_peer.ts";

/** Everything one connection needs. */
export interface EstablishParams {
  readonly context: TlsContext;
  readonly policy: PeerPolicy;
  readonly servername?: string;
  readonly requestCert?: boolean;
  readonly handshakeTimeoutMs: number;
  /** Client only; 0: no wait. */
  readonly refusalWindowMs: number;
  /** Client only: did we present a certificate? */
  readonly presentedCert: boolean;
  readonly config?: Partial<ChannelConfig>;
  readonly signal?: AbortSignal;
}

function codeOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "string" ? c : undefined;
}

function handshakeError(err: unknown, p: EstablishParams): SpokewireError {
  if (err instanceof SpokewireError) return err;
  const code = codeOf(err);
  const who = p.policy.describe;
  if (p.policy.role === "client") {
    let reason = reasonForRefusal(code);
    if (reason === "client-cert-refused" && !p.presentedCert) reason = "client-cert-missing";
    if (reason) {
      return new PeerVerificationError(reason, `Peer ${who} refused our certificate (${code})`, {
        cause: err,
      });
    }
  }
  return new DialError(
    `TLS handshake with ${who} failed: ${code ?? "error"}: ${(err as Error)?.message}`,
    {
      cause: err,
    },
  );
}

/** Handshake, verify, and wrap as a Channel. On any failure the transport is reset. */
export async function establish(transport: TlsTransport, p: EstablishParams): Promise<Channel> {
  let cancel: (() => void) | undefined;
  const hs = tlsHandshake(transport, {
    role: p.policy.role,
    context: p.context,
    servername: p.servername,
    requestCert: p.requestCert,
    onPending: (c) => {
      cancel = c;
    },
  });
  let session: TlsSession;
  try {
    session = await bounded(hs, {
      timeoutMs: p.handshakeTimeoutMs,
      what: `TLS handshake with ${p.policy.describe}`,
      signal: p.signal,
      onCancel: () => {
        cancel?.();
        transport.abort();
        hs.then(
          (s) => s.conn.reset(),
          () => {},
        );
      },
    });
  } catch (err) {
    throw handshakeError(err, p);
  }
  try {
    const identity = await verifyPeer(session, p.policy, p.signal);
    // Server: the client passed; let our session tickets tell it so.
    if (p.policy.role === "server") session.acceptPeer();
    let accepted = p.policy.role === "server";
    if (!accepted && p.refusalWindowMs > 0) accepted = await awaitAcceptance(session, p);
    // The window passed in silence: taken as accepted (a peer may close before it
    // sends a byte; that is not a refusal). With no window at all (opt-in), a close
    // or failure before the first byte fails the first read or write as the refusal.
    const early =
      accepted || p.refusalWindowMs > 0
        ? undefined
        : (e: EarlyEvent) => refusalError(e, p, "before its first byte");
    return new SocketChannel(session.conn, identity, p.config, early);
  } catch (err) {
    session.conn.reset();
    throw err;
  }
}

/**
 * Wait for the server's verdict where the runtime reports it. Resolves true when
 * the server accepted (ticket or data), false when the verdict is still open (the
 * window passed: the channel then maps an early close to a refusal), and throws
 * the refusal.
 */
async function awaitAcceptance(session: TlsSession, p: EstablishParams): Promise<boolean> {
  const first = session.firstEvent();
  let ev: FirstEvent;
  try {
    ev = await bounded(first.promise, {
      timeoutMs: p.refusalWindowMs,
      what: "waiting for the server to accept our certificate",
      signal: p.signal,
      onCancel: () => first.cancel(),
    });
  } catch (err) {
    if (err instanceof TimeoutError) return false; // silent server: the channel decides later
    throw err;
  }
  if (ev.kind === "data" || ev.kind === "ticket") return true;
  throw refusalError(ev, p, "right after the handshake");
}

/** The refusal an early close or failure means, before the server showed it accepted us. */
function refusalError(ev: EarlyEvent, p: EstablishParams, when: string): PeerVerificationError {
  const code = ev.kind === "error" ? ev.code : undefined;
  const fallback = p.presentedCert ? "client-cert-refused" : "client-cert-missing";
  let reason = reasonForRefusal(code) ?? fallback;
  if (reason === "client-cert-refused" && !p.presentedCert) reason = "client-cert-missing";
  const how =
    ev.kind === "end"
      ? "closed the connection"
      : code !== undefined && HANGUP_CODES.has(code)
        ? `reset the connection (${code})`
        : `failed the connection (${code ?? "error"})`;
  return new PeerVerificationError(
    reason,
    `Peer ${p.policy.describe} ${how} ${when}, before any data: it refused our ${p.presentedCert ? "certificate" : "missing certificate"}`,
    { cause: ev.kind === "error" ? ev.error : undefined },
  );
}
