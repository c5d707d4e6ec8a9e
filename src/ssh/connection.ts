/**
 * One authenticated SSH connection (RFC 4252, RFC 4254): publickey user
 * authentication, direct-tcpip channels multiplexed over it, global requests,
 * keepalive@openssh.com and no-more-sessions@openssh.com.
 *
 * @module
 */

import { bounded, deferred } from "../_util/deadline.ts";
import type { ChannelConfig } from "../channel/config.ts";
import {
  AbortedError,
  AuthError,
  ChannelResetError,
  DialError,
  ProtocolError,
  SpokewireError,
  TimeoutError,
} from "../channel/errors.ts";
import type { Channel, PeerIdentity } from "../channel/types.ts";
import { connectRaw } from "../tcp/mod.ts";
import { type ChannelHost, SshChannel } from "./channel.ts";
import { DEFAULT_MACS, defaultCipherPreference } from "./cipher.ts";
import { type SshClientConfig, verifySshClientConfig } from "./config.ts";
import { SSH_MSG, SSH_OPEN } from "./constants.ts";
import {
  createHostKeyVerifier,
  type HostKeyPolicy,
  type HostKeyVerifier,
} from "./host_key_policy.ts";
import { KEX_ALGORITHMS } from "./kex.ts";
import { parseOpenSshPrivateKey, type SshPrivateKey } from "./private_key.ts";
import { SshTransport } from "./transport.ts";
import { SshReader, SshWriter } from "./wire.ts";

/** Algorithm preferences (each a subset of what spokewire implements, in order). */
export interface SshAlgorithms {
  readonly kex?: readonly string[];
  readonly hostKey?: readonly string[];
  readonly ciphers?: readonly string[];
  readonly macs?: readonly string[];
}

/** Options of {@link SshConnection.connect}. */
export interface SshConnectOptions {
  readonly host: string;
  /** Default 22. */
  readonly port?: number;
  readonly username: string;
  /** An OpenSSH private key (text) or a key loaded with parseOpenSshPrivateKey. */
  readonly privateKey: string | SshPrivateKey;
  /** How the server's host key is verified. Required: there is no "accept anything". */
  readonly hostKeys: HostKeyPolicy | HostKeyVerifier;
  readonly algorithms?: SshAlgorithms;
  readonly config?: Partial<SshClientConfig>;
  /** Buffering of the channels this connection opens. */
  readonly channelConfig?: Partial<ChannelConfig>;
  readonly signal?: AbortSignal;
}

/** Where a direct-tcpip channel goes (as seen from the SSH server). */
export interface SshForwardTarget {
  readonly host: string;
  readonly port: number;
}

type OpenWaiter = {
  resolve(ch: SshChannel): void;
  reject(err: SpokewireError): void;
  target: SshForwardTarget;
  abandoned: boolean;
};

const MAX_CHANNELS = 8192;

function isVerifier(x: HostKeyPolicy | HostKeyVerifier): x is HostKeyVerifier {
  return typeof (x as HostKeyVerifier).verify === "function";
}

/**
 * One SSH connection. Use {@link SshConnection.connect}.
 *
 * @example
 * ```ts ignore
 * import { readCredentialFile, SshConnection } from "spokewire";
 * const conn = await SshConnection.connect({
 *   host: "node-1", username: "tunnel",
 *   privateKey: await readCredentialFile("id_ed25519"),
 *   hostKeys: { fingerprints: ["SHA256:..."] },
 * });
 * const ch = await conn.openDirectTcpip({ host: "127.0.0.1", port: 10250 });
 * ```
 */
export class SshConnection {
  /** The verified server host key identity. */
  readonly peer: PeerIdentity;
  /** Resolves with the error that ended the connection; never rejects. */
  readonly closed: Promise<SpokewireError>;

  readonly #t: SshTransport;
  readonly #config: SshClientConfig;
  readonly #channelConfig: Partial<ChannelConfig> | undefined;
  readonly #channels = new Map<number, SshChannel>();
  readonly #opening = new Map<number, OpenWaiter>();
  readonly #globalReplies: Array<{ sentAt: number; done: (ok: boolean) => void }> = [];
  #nextId = 0;
  #answered = 0;
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #dead: SpokewireError | undefined;
  readonly #resolveClosed: (e: SpokewireError) => void;

  private constructor(
    t: SshTransport,
    config: SshClientConfig,
    channelConfig: Partial<ChannelConfig> | undefined,
    closed: Promise<SpokewireError>,
    resolveClosed: (e: SpokewireError) => void,
  ) {
    this.#t = t;
    this.peer = t.peer!;
    this.#config = config;
    this.#channelConfig = channelConfig;
    this.closed = closed;
    this.#resolveClosed = resolveClosed;
  }

  /**
   * Connect, verify the host key, authenticate. Rejects with
   * PEER_VERIFICATION_FAILED (host key), AUTH_FAILED, PROTOCOL_ERROR,
   * DIAL_FAILED, TIMEOUT or ABORTED.
   */
  static async connect(options: SshConnectOptions): Promise<SshConnection> {
    const config = verifySshClientConfig(options.config);
    const port = options.port ?? 22;
    if (typeof options.username !== "string" || options.username === "") {
      throw new TypeError("username must be a non-empty string");
    }
    if (!options.hostKeys)
      throw new TypeError("hostKeys is required: host keys are always verified");
    const verifier = isVerifier(options.hostKeys)
      ? options.hostKeys
      : createHostKeyVerifier(options.hostKeys);
    const key =
      typeof options.privateKey === "string"
        ? await parseOpenSshPrivateKey(options.privateKey)
        : options.privateKey;
    const alg = options.algorithms ?? {};
    const raw = await connectRaw(
      { host: options.host, port },
      { timeoutMs: config.connectTimeoutMs, signal: options.signal },
    );
    let resolveClosed!: (e: SpokewireError) => void;
    const closed = new Promise<SpokewireError>((r) => (resolveClosed = r));
    // Messages before the connection object exists (auth) go through this inbox.
    const inbox: Uint8Array[] = [];
    let wake: (() => void) | undefined;
    let conn: SshConnection | undefined;
    let deadErr: SpokewireError | undefined;
    const t = new SshTransport(raw, {
      host: options.host,
      port,
      verifier,
      kexAlgorithms: alg.kex ?? KEX_ALGORITHMS,
      hostKeyAlgorithms: alg.hostKey ?? verifier.preferredAlgorithms(options.host, port),
      ciphers: alg.ciphers ?? defaultCipherPreference(),
      macs: alg.macs ?? DEFAULT_MACS,
      requireStrictKex: config.requireStrictKex,
      rekeyBytes: config.rekeyBytes,
      rekeyPackets: config.rekeyPackets,
      rekeyIntervalMs: config.rekeyIntervalMs,
      maxPacketLength: config.maxPacketLength,
      onMessage: (p) => {
        if (conn) conn.#onMessage(p);
        else {
          inbox.push(p);
          wake?.();
        }
      },
      onClose: (e) => {
        deadErr = e;
        wake?.();
        if (conn) conn.#onDead(e);
        else resolveClosed(e);
      },
    });
    const next = async (): Promise<Uint8Array> => {
      for (let i = 0; i < 1_000; i++) {
        const m = inbox.shift();
        if (m) return m;
        if (deadErr) throw deadErr;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      throw new ProtocolError("too many messages during authentication");
    };
    const handshake = async (): Promise<void> => {
      await t.ready;
      t.send(new SshWriter(32).byte(SSH_MSG.SERVICE_REQUEST).string("ssh-userauth").finish());
      const acc = await next();
      if (acc[0] !== SSH_MSG.SERVICE_ACCEPT) {
        throw new ProtocolError(`expected SERVICE_ACCEPT, got message ${acc[0]}`);
      }
      await authenticate(t, options.username, key, next);
    };
    t.start();
    try {
      await bounded(handshake(), {
        timeoutMs: config.handshakeTimeoutMs,
        what: `SSH handshake with ${options.host}:${port}`,
        signal: options.signal,
        onCancel: (err) =>
          t.fail(err instanceof SpokewireError ? err : new AbortedError("handshake cancelled")),
      });
    } catch (err) {
      t.fail(err instanceof SpokewireError ? err : new ProtocolError(String(err)));
      if (err instanceof ChannelResetError) {
        throw new DialError(`SSH handshake with ${options.host}:${port} failed: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
    conn = new SshConnection(t, config, options.channelConfig, closed, resolveClosed);
    for (const m of inbox.splice(0)) conn.#onMessage(m);
    if (deadErr) conn.#onDead(deadErr);
    // Hygiene for a tunnel-only client: no sessions on this connection, ever.
    t.send(
      new SshWriter(48)
        .byte(SSH_MSG.GLOBAL_REQUEST)
        .string("no-more-sessions@openssh.com")
        .bool(false)
        .finish(),
    );
    conn.#startKeepalive();
    return conn;
  }

  /** Whether the connection is usable. */
  get alive(): boolean {
    return this.#dead === undefined;
  }

  /** Channels open or closing (ids not yet free). */
  get channelCount(): number {
    return this.#channels.size + this.#opening.size;
  }

  /** Server requests (global or channel, e.g. keepalive@openssh.com) we answered. */
  get answeredRequests(): number {
    return this.#answered;
  }

  /** Completed key exchanges (1 after connect; more after rekeys). */
  get kexCount(): number {
    return this.#t.kexCount;
  }

  /** The negotiated algorithms. */
  get algorithms(): { kex: string; hostKey: string; cipher: string; mac: string | undefined } {
    const n = this.#t.negotiated!;
    return { kex: n.kex, hostKey: n.hostKey, cipher: n.cipherC2S, mac: n.macC2S };
  }

  /** Start a key re-exchange now. */
  rekey(): void {
    this.#t.rekey();
  }

  /** Send keepalive@openssh.com and wait for any reply (proof of liveness). */
  ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    const d = deferred<void>();
    this.#globalRequest("keepalive@openssh.com", () => d.resolve());
    return bounded(d.promise, {
      timeoutMs: this.#config.keepaliveTimeoutMs,
      what: "SSH keepalive",
      signal: options.signal,
    });
  }

  /**
   * Open a direct-tcpip channel to `target` (resolved by the server).
   * Rejects with DIAL_FAILED when the server refuses or cannot connect.
   */
  async openDirectTcpip(
    target: SshForwardTarget,
    options: { signal?: AbortSignal } = {},
  ): Promise<Channel> {
    if (typeof target?.host !== "string" || target.host === "")
      throw new TypeError("target host must be non-empty");
    if (!Number.isInteger(target.port) || target.port < 0 || target.port > 65535) {
      throw new RangeError(`target port must be an integer in [0, 65535], got ${target.port}`);
    }
    if (options.signal?.aborted)
      throw new AbortedError("SSH dial was aborted", { cause: options.signal.reason });
    if (this.#dead)
      throw new DialError(`SSH connection is down: ${this.#dead.message}`, { cause: this.#dead });
    if (this.channelCount >= MAX_CHANNELS)
      throw new DialError(`too many SSH channels (${MAX_CHANNELS})`);
    let id = this.#nextId;
    while (this.#channels.has(id) || this.#opening.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    const d = deferred<SshChannel>();
    const waiter: OpenWaiter = { resolve: d.resolve, reject: d.reject, target, abandoned: false };
    this.#opening.set(id, waiter);
    this.#t.send(
      new SshWriter(128)
        .byte(SSH_MSG.CHANNEL_OPEN)
        .string("direct-tcpip")
        .uint32(id)
        .uint32(this.#config.receiveWindow)
        .uint32(this.#config.maxPacketSize)
        .string(target.host)
        .uint32(target.port)
        .string("127.0.0.1")
        .uint32(0)
        .finish(),
    );
    try {
      return await bounded(d.promise, {
        timeoutMs: this.#config.openTimeoutMs,
        what: `SSH channel open to ${target.host}:${target.port}`,
        signal: options.signal,
        onCancel: () => {
          waiter.abandoned = true;
        },
      });
    } catch (err) {
      if (err instanceof TimeoutError) throw new DialError(err.message, { cause: err });
      throw err;
    }
  }

  /** Close politely: DISCONNECT, then the socket. Every channel errors. */
  close(): void {
    this.#t.close();
  }

  /** Drop the TCP connection at once (a crash, as tests need). */
  kill(): void {
    this.#t.kill();
  }

  // ---- internals ---------------------------------------------------------------------

  #globalRequest(name: string, done: (ok: boolean) => void): void {
    this.#globalReplies.push({ sentAt: Date.now(), done });
    this.#t.send(new SshWriter(48).byte(SSH_MSG.GLOBAL_REQUEST).string(name).bool(true).finish());
  }

  #startKeepalive(): void {
    const every = this.#config.keepaliveIntervalMs;
    if (every === 0) return;
    const tick = Math.min(every, this.#config.keepaliveTimeoutMs);
    let last = Date.now();
    this.#keepalive = setInterval(() => {
      const now = Date.now();
      const oldest = this.#globalReplies[0];
      if (oldest && now - oldest.sentAt > this.#config.keepaliveTimeoutMs) {
        this.#t.fail(
          new TimeoutError("SSH keepalive went unanswered", this.#config.keepaliveTimeoutMs),
        );
        return;
      }
      if (now - last >= every) {
        last = now;
        this.#globalRequest("keepalive@openssh.com", () => {});
      }
    }, tick);
  }

  #onDead(e: SpokewireError): void {
    if (this.#dead) return;
    this.#dead = e;
    clearInterval(this.#keepalive);
    const lost = new DialError(`SSH connection lost while opening a channel: ${e.message}`, {
      cause: e,
    });
    for (const w of this.#opening.values()) w.reject(lost);
    this.#opening.clear();
    for (const ch of [...this.#channels.values()]) ch.onConnectionLost(e);
    this.#channels.clear();
    for (const g of this.#globalReplies.splice(0)) g.done(false);
    this.#resolveClosed(e);
  }

  #host(): ChannelHost {
    const t = this.#t;
    const self = this;
    return {
      send: (p, body) => t.send(p, body),
      get congested() {
        return t.congested;
      },
      whenDrained: () => t.whenDrained(),
      free: (id) => {
        self.#channels.delete(id);
      },
      get alive() {
        return self.#dead === undefined;
      },
    };
  }

  #onMessage(p: Uint8Array): void {
    const r = new SshReader(p, 1);
    const type = p[0]!;
    switch (type) {
      case SSH_MSG.GLOBAL_REQUEST: {
        r.string(256);
        if (r.bool()) {
          // keepalive@openssh.com and anything unknown: any reply proves we are alive.
          this.#answered++;
          this.#t.send(new Uint8Array([SSH_MSG.REQUEST_FAILURE]));
        }
        return;
      }
      case SSH_MSG.REQUEST_SUCCESS:
      case SSH_MSG.REQUEST_FAILURE: {
        const g = this.#globalReplies.shift();
        if (!g) throw new ProtocolError("global request reply without a request");
        g.done(type === SSH_MSG.REQUEST_SUCCESS);
        return;
      }
      case SSH_MSG.CHANNEL_OPEN: {
        r.string(256);
        const sender = r.uint32();
        this.#t.send(
          new SshWriter(64)
            .byte(SSH_MSG.CHANNEL_OPEN_FAILURE)
            .uint32(sender)
            .uint32(SSH_OPEN.ADMINISTRATIVELY_PROHIBITED)
            .string("this client accepts no channels")
            .string("")
            .finish(),
        );
        return;
      }
      case SSH_MSG.CHANNEL_OPEN_CONFIRMATION: {
        const id = r.uint32();
        const remoteId = r.uint32();
        const window = r.uint32();
        const maxPacket = r.uint32();
        const w = this.#opening.get(id);
        if (!w) throw new ProtocolError(`OPEN_CONFIRMATION for unknown channel ${id}`);
        this.#opening.delete(id);
        const ch = new SshChannel(this.#host(), {
          localId: id,
          remoteId,
          remoteWindow: window,
          remoteMaxPacket: maxPacket,
          localWindow: this.#config.receiveWindow,
          localMaxPacket: this.#config.maxPacketSize,
          peer: {
            ...this.peer,
            details: { ...this.peer.details, target: `${w.target.host}:${w.target.port}` },
          },
          config: this.#channelConfig,
        });
        this.#channels.set(id, ch);
        if (w.abandoned) ch.abort(new AbortedError("dial abandoned"));
        else w.resolve(ch);
        return;
      }
      case SSH_MSG.CHANNEL_OPEN_FAILURE: {
        const id = r.uint32();
        const code = r.uint32();
        const desc = r.string(1024);
        const w = this.#opening.get(id);
        if (!w) throw new ProtocolError(`OPEN_FAILURE for unknown channel ${id}`);
        this.#opening.delete(id);
        const why =
          code === SSH_OPEN.ADMINISTRATIVELY_PROHIBITED
            ? "administratively prohibited"
            : code === SSH_OPEN.CONNECT_FAILED
              ? "connect failed"
              : `reason ${code}`;
        w.reject(
          new DialError(
            `SSH server refused direct-tcpip to ${w.target.host}:${w.target.port}: ${why} (${desc.slice(0, 200)})`,
          ),
        );
        return;
      }
      case SSH_MSG.USERAUTH_BANNER:
      case SSH_MSG.USERAUTH_SUCCESS:
        return;
      default:
        break;
    }
    if (type >= SSH_MSG.CHANNEL_WINDOW_ADJUST && type <= SSH_MSG.CHANNEL_FAILURE) {
      const id = r.uint32();
      const ch = this.#channels.get(id);
      if (!ch) throw new ProtocolError(`message ${type} for unknown channel ${id}`);
      switch (type) {
        case SSH_MSG.CHANNEL_DATA:
          ch.onData(r.bytes(this.#config.maxPacketLength));
          return;
        case SSH_MSG.CHANNEL_EXTENDED_DATA:
          r.uint32();
          ch.onExtendedData(r.bytes(this.#config.maxPacketLength).byteLength);
          return;
        case SSH_MSG.CHANNEL_WINDOW_ADJUST:
          ch.onWindowAdjust(r.uint32());
          return;
        case SSH_MSG.CHANNEL_EOF:
          ch.onEof();
          return;
        case SSH_MSG.CHANNEL_CLOSE:
          ch.onClose();
          return;
        case SSH_MSG.CHANNEL_REQUEST: {
          r.string(256);
          if (r.bool()) {
            this.#answered++;
            this.#t.send(
              new SshWriter(8).byte(SSH_MSG.CHANNEL_FAILURE).uint32(ch.remoteId).finish(),
            );
          }
          return;
        }
        default:
          return; // CHANNEL_SUCCESS / FAILURE: we send no channel requests
      }
    }
    this.#t.unimplemented();
  }
}

/** RFC 4252 §7 publickey authentication with a signature (no query round trip). */
async function authenticate(
  t: SshTransport,
  username: string,
  key: SshPrivateKey,
  next: () => Promise<Uint8Array>,
): Promise<void> {
  let alg = key.type;
  if (key.type === "ssh-rsa") {
    const algs = t.serverSigAlgs;
    alg =
      algs && !algs.includes("rsa-sha2-512") && algs.includes("rsa-sha2-256")
        ? "rsa-sha2-256"
        : "rsa-sha2-512";
  }
  const request = (w: SshWriter): SshWriter =>
    w
      .byte(SSH_MSG.USERAUTH_REQUEST)
      .string(username)
      .string("ssh-connection")
      .string("publickey")
      .bool(true)
      .string(alg)
      .bytes(key.publicBlob);
  const signed = request(new SshWriter(512).bytes(t.sessionId!)).finish();
  const sig = await key.sign(signed, alg);
  t.send(request(new SshWriter(1024)).bytes(sig).finish());
  for (let i = 0; i < 100; i++) {
    const m = await next();
    if (m[0] === SSH_MSG.USERAUTH_BANNER) continue;
    if (m[0] === SSH_MSG.USERAUTH_SUCCESS) return;
    if (m[0] === SSH_MSG.USERAUTH_FAILURE) {
      const methods = new SshReader(m, 1).nameList();
      throw new AuthError(
        `SSH server refused publickey authentication of "${username}" with ${alg} key (it allows: ${methods.join(",")})`,
      );
    }
    throw new ProtocolError(`unexpected message ${m[0]} during authentication`);
  }
  throw new ProtocolError("too many banners during authentication");
}
