/**
 * The mutual-TLS client: dial TCP, or run TLS over any existing Channel.
 *
 * @module
 */

import { channelTransport, connectTcpTransport, type TlsTransport } from "../_runtime/tls.ts";
import { bounded } from "../_util/deadline.ts";
import { positiveInt } from "../channel/config.ts";
import { SpokewireError } from "../channel/errors.ts";
import type { Channel, Dialer, DialOptions } from "../channel/types.ts";
import { mapSocketError } from "../tcp/socket_channel.ts";
import { DEFAULT_TCP_CONNECT_TIMEOUT_MS } from "../tcp/tcp.ts";
import {
  DEFAULT_TLS_AUTHORIZE_TIMEOUT_MS,
  DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_TLS_REFUSAL_WINDOW_MS,
  normalizeFingerprint,
  type TlsClientOptions,
  type TlsCredentials,
  verifyTlsClientOptions,
} from "./config.ts";
import { ContextHolder } from "./context_holder.ts";
import { establish } from "./establish.ts";
import { parseIp } from "./name_match.ts";

/** Where to dial: `host:port`, and the identity the server must prove (default: `host`). */
export interface TlsTarget {
  readonly host: string;
  readonly port: number;
  /** Expected server identity: a DNS name, an IP, or a name `nameMap` maps to SANs. */
  readonly name?: string;
}

/** Options of {@link TlsDialer}. */
export interface TlsDialerOptions extends TlsClientOptions {
  /** Guards against a target that never answers the SYN. Default 10 000 ms. */
  readonly connectTimeoutMs?: number;
}

function fmt(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Dials mutual-TLS channels. The server is verified against `credentials.ca`
 * only (never system roots unless `useSystemRoots`) and against the expected
 * name, by SAN (never the CN).
 *
 * @example
 * ```ts ignore
 * import { TlsDialer } from "spokewire";
 * const dialer = new TlsDialer({ credentials: { ca: caPem, cert: clientPem, key: keyPem } });
 * const ch = await dialer.dial({ host: "10.0.0.7", port: 10250, name: "node-1.example" });
 * console.log(ch.peer.id, ch.peer.fingerprint);
 * await ch.close();
 * ```
 */
export class TlsDialer implements Dialer<TlsTarget> {
  readonly #opts: TlsDialerOptions;
  readonly #ctx: ContextHolder;
  #sockets = 0;

  constructor(options: TlsDialerOptions) {
    verifyTlsClientOptions(options);
    if (options.connectTimeoutMs !== undefined) {
      positiveInt("connectTimeoutMs", options.connectTimeoutMs, 1, 3_600_000);
    }
    this.#opts = options;
    this.#ctx = new ContextHolder(options, false);
  }

  /** Rotate certificate, key and CA bundle: open channels keep theirs, new dials use these. */
  updateCredentials(credentials: TlsCredentials): void {
    this.#ctx.update(credentials);
  }

  /**
   * TCP sockets this dialer holds now: connecting, in a handshake, or under an
   * open channel. For leak checks: it returns to its old value once an
   * aborted or failed dial has let go of its socket.
   */
  get liveSockets(): number {
    return this.#sockets;
  }

  async dial(target: TlsTarget, options: DialOptions = {}): Promise<Channel> {
    if (typeof target !== "object" || target === null)
      throw new TypeError("target must be an object");
    if (typeof target.host !== "string" || target.host === "")
      throw new TypeError("host must be non-empty");
    positiveInt("port", target.port, 1, 65535);
    const where = fmt(target.host, target.port);
    let cancel: (() => void) | undefined;
    this.#sockets++;
    const p = connectTcpTransport(target, {
      onPending: (c) => (cancel = c),
      onClosed: () => {
        this.#sockets--;
      },
    });
    let transport: TlsTransport;
    try {
      transport = await bounded(p, {
        timeoutMs: this.#opts.connectTimeoutMs ?? DEFAULT_TCP_CONNECT_TIMEOUT_MS,
        what: `dial ${where}`,
        signal: options.signal,
        onCancel: () => {
          cancel?.();
          p.then(
            (t) => t.abort(),
            () => {},
          );
        },
      });
    } catch (err) {
      if (err instanceof SpokewireError) throw err;
      throw mapSocketError(err as Error, true);
    }
    return this.#establish(transport, target.name ?? target.host, where, options.signal);
  }

  /**
   * Run TLS as the client over an existing Channel (an SSH direct-tcpip
   * channel, a Konnectivity stream, a memory pair) and verify the server as
   * `name`. The returned Channel owns `channel`.
   */
  connectOver(channel: Channel, name: string, options: DialOptions = {}): Promise<Channel> {
    if (typeof name !== "string" || name === "") throw new TypeError("name must be non-empty");
    return this.#establish(
      channelTransport(channel),
      name,
      `"${name}" over a channel`,
      options.signal,
    );
  }

  #establish(
    transport: TlsTransport,
    name: string,
    where: string,
    signal?: AbortSignal,
  ): Promise<Channel> {
    const o = this.#opts;
    return establish(transport, {
      context: this.#ctx.current,
      servername: parseIp(name) ? undefined : name,
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
      refusalWindowMs: o.refusalWindowMs ?? DEFAULT_TLS_REFUSAL_WINDOW_MS,
      presentedCert: this.#ctx.hasCert,
      config: o.config,
      signal,
      policy: {
        role: "client",
        expectedName: name,
        nameMap: o.nameMap,
        requireClientCert: false,
        roots: this.#ctx.roots,
        pins: new Set((o.pinnedFingerprints ?? []).map(normalizeFingerprint)),
        skipVerification: o.dangerouslySkipVerification === true,
        logger: o.logger ?? console,
        now: o.now ?? (() => new Date()),
        authorizeTimeoutMs: DEFAULT_TLS_AUTHORIZE_TIMEOUT_MS,
        describe: `${where} (expecting "${name}")`,
      },
    });
  }
}
