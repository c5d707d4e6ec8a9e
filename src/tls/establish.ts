/**
 * One TLS connection from transport to verified Channel: bounded handshake,
 * peer verification, the channel, and (client side) the refusal window.
 *
 * The refusal window: in TLS 1.3 the server judges the client's certificate
 * after the client has finished its handshake, so a refusal reaches the client
 * as an alert or a hang-up right after `secureConnect`. The client waits up to
 * `refusalWindowMs` for the server's first sign: data (accepted, the wait ends
 * at once), or a hang-up / alert before any byte (refused: PEER_VERIFICATION_FAILED
 * with reason `client-cert-refused`, or `client-cert-missing` when we sent no
 * certificate). A server that stays silent through the window is taken as
 * having accepted. spokewire's listener refuses within the window (it resets
 * the connection as soon as its checks fail), OpenSSL servers send an alert.
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
import { SocketChannel } from "../tcp/socket_channel.ts";
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
    const channel = new SocketChannel(session.conn, identity, p.config);
    if (p.policy.role === "client" && p.refusalWindowMs > 0) {
      await awaitAcceptance(session, channel, p);
    }
    return channel;
  } catch (err) {
    session.conn.reset();
    throw err;
  }
}

async function awaitAcceptance(
  session: TlsSession,
  channel: Channel,
  p: EstablishParams,
): Promise<void> {
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
    if (err instanceof TimeoutError) return; // silent server: accepted
    channel.abort(err);
    throw err;
  }
  if (ev.kind === "data") return;
  channel.abort(new Error("refused"));
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
  throw new PeerVerificationError(
    reason,
    `Peer ${p.policy.describe} ${how} right after the handshake, before any data: it refused our ${p.presentedCert ? "certificate" : "missing certificate"}`,
    { cause: ev.kind === "error" ? ev.error : undefined },
  );
}
