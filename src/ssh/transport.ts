/**
 * The SSH transport layer (RFC 4253) on a {@link RawConn}: version exchange,
 * key exchange with strict-kex (the Terrapin defence), host key verification
 * before anything else, packet protection, and rekeying by bytes, packets and
 * time in either direction while channels stream.
 *
 * Everything after the key exchange runs synchronously per packet; only the
 * key exchange itself awaits WebCrypto, and the receive loop pauses meanwhile.
 *
 * @module
 */

import type { RawConn } from "../_runtime/net.ts";
import { deferred } from "../_util/deadline.ts";
import {
  ChannelResetError,
  PeerVerificationError,
  ProtocolError,
  SpokewireError,
} from "../channel/errors.ts";
import type { PeerIdentity } from "../channel/types.ts";
import { CIPHERS, MACS, makeOpener, makeSealer, type PacketOpener } from "./cipher.ts";
import {
  describeMessage,
  EXT_INFO_CLIENT,
  SSH_DISCONNECT,
  SSH_MSG,
  STRICT_KEX_CLIENT,
  STRICT_KEX_SERVER,
} from "./constants.ts";
import { verifySshSignature } from "./host_key.ts";
import type { HostKeyVerifier } from "./host_key_policy.ts";
import { deriveKey, exchangeHash, type KexEphemeral, startKex } from "./kex.ts";
import {
  decodeKexInit,
  encodeKexInit,
  type KexInit,
  type Negotiated,
  negotiate,
} from "./kexinit.ts";
import { Outbox, PacketDecoder, PacketEncoder } from "./packet_codec.ts";
import { CLIENT_IDENT, clientIdentLine, VersionReader } from "./version.ts";
import { equalBytes, SshReader, SshWriter } from "./wire.ts";

/** What the transport needs. */
export interface TransportOptions {
  readonly host: string;
  readonly port: number;
  readonly verifier: HostKeyVerifier;
  readonly kexAlgorithms: readonly string[];
  readonly hostKeyAlgorithms: readonly string[];
  readonly ciphers: readonly string[];
  readonly macs: readonly string[];
  readonly requireStrictKex: boolean;
  readonly rekeyBytes: number;
  readonly rekeyPackets: number;
  readonly rekeyIntervalMs: number;
  readonly maxPacketLength: number;
  /** Connection-layer messages (service, userauth, channels, global requests). */
  onMessage(payload: Uint8Array): void;
  /** The transport died; called once. */
  onClose(error: SpokewireError): void;
}

/** Bytes the receive side buffers while a key exchange computes, before pausing the socket. */
const MAX_BUFFER_DURING_KEX = 4 * 1024 * 1024;
/** Bytes queued for sending during a key exchange before writers are told to wait. */
const MAX_PENDING_DURING_KEX = 1024 * 1024;
/** Sealed bytes that make the socket write at once rather than at the end of the microtask. */
const FLUSH_BYTES = 256 * 1024;
/**
 * Bytes handed to the socket after it asked us to wait, before writers are
 * told to wait too. Where socket writes complete asynchronously (Deno's
 * node:net), waiting at the socket's own 16 KiB mark would leave the socket
 * idle while the next packets are sealed; this keeps it fed, bounded.
 */
const SOCKET_SLACK = 1024 * 1024;

type Outgoing = { head: Uint8Array; body?: Uint8Array };

/** The transport of one SSH connection. */
export class SshTransport {
  /** The verified server identity (set before the handshake resolves). */
  peer: PeerIdentity | undefined;
  sessionId: Uint8Array | undefined;
  serverIdent = "";
  /** `server-sig-algs` from EXT_INFO (RFC 8308), if the server sent it. */
  serverSigAlgs: string[] | undefined;
  /** The algorithms of the current keys. */
  negotiated: Negotiated | undefined;
  /** Completed key exchanges (1 after the handshake). */
  kexCount = 0;

  readonly #conn: RawConn;
  readonly #o: TransportOptions;
  readonly #ready = deferred<void>();
  readonly #encoder = new PacketEncoder();
  readonly #decoder: PacketDecoder;
  #version: VersionReader | undefined = new VersionReader();
  #closed = false;
  #busy = false;
  #paused = false;

  // key exchange state
  #strict = false;
  #first = true;
  #packetsSeen = 0;
  #ours: Uint8Array | undefined;
  #oursInit: ReturnType<typeof decodeKexInit> | undefined;
  #theirs: Uint8Array | undefined;
  #eph: KexEphemeral | undefined;
  #nextOpener: PacketOpener | undefined;
  #hostKey: Uint8Array | undefined;
  #ignoreNextKex = false;
  #blocked = false;
  #pending: Outgoing[] = [];
  #pendingBytes = 0;

  // rekey accounting
  #bytes = 0;
  #packets = 0;
  #rekeyTimer: ReturnType<typeof setTimeout> | undefined;

  // output
  readonly #outbox = new Outbox();
  #flushScheduled = false;
  #socketCongested = false;
  #awaitingDrain = false;
  #sinceFull = 0;
  #drainWaiters: Array<() => void> = [];

  constructor(conn: RawConn, options: TransportOptions) {
    this.#conn = conn;
    this.#o = options;
    this.#decoder = new PacketDecoder(options.maxPacketLength);
    this.#ready.promise.catch(() => {});
  }

  /** Resolves after the first key exchange (host key verified, keys in force). */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** Whether the transport has died. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True while writers should wait ({@link SshTransport.whenDrained}). */
  get congested(): boolean {
    return this.#socketCongested || this.#pendingBytes > MAX_PENDING_DURING_KEX;
  }

  /** Resolves when {@link SshTransport.congested} turns false or the transport dies. */
  whenDrained(): Promise<void> {
    if (!this.congested || this.#closed) return Promise.resolve();
    return new Promise((r) => this.#drainWaiters.push(r));
  }

  /** Start: send our identification and KEXINIT, and begin reading. */
  start(): void {
    this.#conn.attach({
      onData: (chunk) => this.#onData(chunk),
      onEnd: () => this.fail(new ChannelResetError("the SSH server closed the connection")),
      onError: (err) =>
        this.fail(
          new ChannelResetError(`SSH connection failed: ${err.code ?? ""} ${err.message}`, {
            cause: err,
          }),
        ),
      onClose: () => this.fail(new ChannelResetError("the SSH connection closed")),
    });
    this.#rawWrite(clientIdentLine());
    this.#sendKexInit();
  }

  /** Send a connection-layer message (queued during a key exchange). */
  send(payload: Uint8Array, body?: Uint8Array): void {
    if (this.#closed) return;
    if (this.#blocked) {
      const copy = body ? body.slice() : undefined;
      this.#pending.push({ head: payload, body: copy });
      this.#pendingBytes += payload.byteLength + (copy?.byteLength ?? 0);
      return;
    }
    this.#writePacket(payload, body);
  }

  /** Tear down: best-effort DISCONNECT, then close the socket. Idempotent. */
  fail(error: SpokewireError, disconnectCode?: number): void {
    if (this.#closed) return;
    if (disconnectCode !== undefined && !this.#version) {
      try {
        const w = new SshWriter(64)
          .byte(SSH_MSG.DISCONNECT)
          .uint32(disconnectCode)
          .string(error.message.slice(0, 200))
          .string("");
        this.#writePacket(w.finish());
        this.#flush();
      } catch {
        // the socket may already be gone
      }
    }
    this.#closed = true;
    clearTimeout(this.#rekeyTimer);
    this.#conn.destroy();
    this.#ready.reject(error);
    for (const w of this.#drainWaiters.splice(0)) w();
    this.#o.onClose(error);
  }

  /** Close politely (DISCONNECT by application). */
  close(): void {
    this.fail(
      new ChannelResetError("SSH connection closed locally"),
      SSH_DISCONNECT.BY_APPLICATION,
    );
  }

  /** Destroy the TCP connection at once, without a DISCONNECT (a crash, for tests). */
  kill(): void {
    if (this.#closed) return;
    this.#conn.reset();
    this.fail(new ChannelResetError("SSH connection killed"));
  }

  /** Tell the server we do not implement the message we just received (RFC 4253 §11.4). */
  unimplemented(): void {
    this.send(
      new SshWriter(8)
        .byte(SSH_MSG.UNIMPLEMENTED)
        .uint32((this.#decoder.seq - 1) >>> 0)
        .finish(),
    );
  }

  /** Start a key re-exchange now (no-op when one is running). */
  rekey(): void {
    if (!this.#closed && !this.#ours && !this.#first) this.#sendKexInit();
  }

  // ---- output -------------------------------------------------------------------

  #rawWrite(b: Uint8Array): void {
    this.#outbox.append(b);
    this.#queued();
  }

  /** Bytes went into the outbox: write them now if there are many, else at the end of this microtask. */
  #queued(): void {
    if (this.#outbox.bytes >= FLUSH_BYTES) this.#flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    const parts = this.#outbox.take();
    if (parts.length === 0 || this.#closed) return;
    let ok = true;
    let n = 0;
    for (const p of parts) {
      ok = this.#conn.write(p) && ok;
      n += p.byteLength;
    }
    if (this.#awaitingDrain) this.#sinceFull += n;
    else if (!ok) {
      this.#awaitingDrain = true;
      this.#sinceFull = 0;
      this.#conn.drained().then(
        () => {
          this.#awaitingDrain = false;
          this.#socketCongested = false;
          this.#wakeWriters();
        },
        () => {},
      );
    }
    if (this.#awaitingDrain && this.#sinceFull >= SOCKET_SLACK) this.#socketCongested = true;
  }

  #wakeWriters(): void {
    if (this.congested) return;
    for (const w of this.#drainWaiters.splice(0)) w();
  }

  #writePacket(head: Uint8Array, body?: Uint8Array): void {
    this.#encoder.encodeInto(this.#outbox, head, body);
    this.#bytes += head.byteLength + (body?.byteLength ?? 0);
    this.#packets++;
    this.#queued();
    this.#maybeRekey();
  }

  #maybeRekey(): void {
    if (this.#ours || this.#first || this.#closed) return;
    if (this.#bytes >= this.#o.rekeyBytes || this.#packets >= this.#o.rekeyPackets)
      this.#sendKexInit();
  }

  // ---- input --------------------------------------------------------------------

  #onData(chunk: Uint8Array): boolean {
    if (this.#closed) return true;
    if (this.#version) {
      let got: { ident: string; rest: Uint8Array } | undefined;
      try {
        got = this.#version.push(chunk);
      } catch (err) {
        this.fail(err as SpokewireError);
        return true;
      }
      if (!got) return true;
      this.#version = undefined;
      this.serverIdent = got.ident;
      chunk = got.rest;
    }
    this.#decoder.push(chunk);
    this.#pump();
    if (this.#busy && this.#decoder.buffered > MAX_BUFFER_DURING_KEX) {
      this.#paused = true;
      return false;
    }
    return true;
  }

  #pump(): void {
    if (this.#busy || this.#closed) return;
    try {
      for (let i = 0; ; i++) {
        const payload = this.#decoder.next();
        if (!payload) break;
        this.#bytes += payload.byteLength;
        this.#packets++;
        const r = this.#handle(payload);
        if (this.#closed) return;
        if (r) {
          this.#busy = true;
          r.then(
            () => {
              this.#busy = false;
              if (this.#paused) {
                this.#paused = false;
                this.#conn.resume();
              }
              this.#pump();
            },
            (err) => this.#fatal(err),
          );
          return;
        }
        if (i % 64 === 63) this.#maybeRekey();
      }
      this.#maybeRekey();
    } catch (err) {
      this.#fatal(err);
    }
  }

  #fatal(err: unknown): void {
    let e: SpokewireError;
    let code: number = SSH_DISCONNECT.PROTOCOL_ERROR;
    if (err instanceof PeerVerificationError) {
      e = err;
      code = SSH_DISCONNECT.HOST_KEY_NOT_VERIFIABLE;
    } else if (err instanceof ProtocolError || err instanceof ChannelResetError) e = err;
    else if (err instanceof SpokewireError) e = err;
    else
      e = new ProtocolError(`SSH transport failure: ${(err as Error)?.message ?? err}`, {
        cause: err,
      });
    this.fail(e, code);
  }

  #handle(p: Uint8Array): Promise<void> | undefined {
    const type = p[0]!;
    this.#packetsSeen++;
    if (this.#first) {
      const early = this.#packetsSeen === 1 && type !== SSH_MSG.KEXINIT;
      if (
        early &&
        (this.#o.requireStrictKex || (type !== SSH_MSG.IGNORE && type !== SSH_MSG.DEBUG))
      ) {
        throw new ProtocolError(`first packet is ${describeMessage(type)}, expected KEXINIT`);
      }
      const kexMsg =
        type === SSH_MSG.KEXINIT || type === SSH_MSG.KEX_ECDH_REPLY || type === SSH_MSG.NEWKEYS;
      if (!kexMsg && (this.#strict || type >= 50 || type === SSH_MSG.SERVICE_ACCEPT)) {
        throw new ProtocolError(
          `unexpected ${describeMessage(type)} during the initial key exchange`,
        );
      }
    }
    switch (type) {
      case SSH_MSG.KEXINIT:
        return this.#onKexInit(p);
      case SSH_MSG.KEX_ECDH_REPLY:
        if (this.#ignoreNextKex) {
          this.#ignoreNextKex = false;
          return undefined;
        }
        return this.#onEcdhReply(p);
      case SSH_MSG.NEWKEYS:
        this.#onNewKeys();
        return undefined;
      case SSH_MSG.DISCONNECT: {
        const r = new SshReader(p, 1);
        const code = r.uint32();
        const text = r.string(1024);
        this.fail(
          new ChannelResetError(`SSH server disconnected (code ${code}): ${text.slice(0, 200)}`),
        );
        return undefined;
      }
      case SSH_MSG.IGNORE:
      case SSH_MSG.DEBUG:
      case SSH_MSG.UNIMPLEMENTED:
        return undefined;
      case SSH_MSG.EXT_INFO:
        this.#onExtInfo(p);
        return undefined;
      default:
        if (type === SSH_MSG.SERVICE_ACCEPT || type >= 50) {
          this.#o.onMessage(p);
          return undefined;
        }
        this.#writeOrQueue(
          new SshWriter(8)
            .byte(SSH_MSG.UNIMPLEMENTED)
            .uint32((this.#decoder.seq - 1) >>> 0)
            .finish(),
        );
        return undefined;
    }
  }

  #writeOrQueue(p: Uint8Array): void {
    this.send(p);
  }

  #onExtInfo(p: Uint8Array): void {
    const r = new SshReader(p, 1);
    const n = r.uint32();
    if (n > 64) throw new ProtocolError(`EXT_INFO with ${n} extensions`);
    for (let i = 0; i < n; i++) {
      const name = r.string(256);
      const value = r.bytes(64 * 1024);
      if (name === "server-sig-algs")
        this.serverSigAlgs = new SshReader(new SshWriter().bytes(value).finish()).nameList();
    }
  }

  // ---- key exchange -----------------------------------------------------------------

  #clientKexInit(): Omit<KexInit, "cookie" | "firstKexFollows"> {
    const o = this.#o;
    const extra = this.#first ? [EXT_INFO_CLIENT, STRICT_KEX_CLIENT] : [];
    return {
      kex: [...o.kexAlgorithms, ...extra],
      hostKey: [...o.hostKeyAlgorithms],
      cipherC2S: [...o.ciphers],
      cipherS2C: [...o.ciphers],
      macC2S: [...o.macs],
      macS2C: [...o.macs],
      compC2S: ["none"],
      compS2C: ["none"],
    };
  }

  #sendKexInit(): void {
    const init = this.#clientKexInit();
    const payload = encodeKexInit(init);
    this.#ours = payload;
    this.#oursInit = decodeKexInit(payload);
    this.#blocked = true;
    this.#writePacket(payload);
  }

  async #onKexInit(p: Uint8Array): Promise<void> {
    if (this.#theirs) throw new ProtocolError("second KEXINIT during a key exchange");
    const server = decodeKexInit(p);
    this.#theirs = p.slice();
    if (this.#first) {
      this.#strict = server.kex.includes(STRICT_KEX_SERVER);
      if (this.#strict && this.#packetsSeen !== 1) {
        throw new ProtocolError("strict key exchange: the server's first packet was not KEXINIT");
      }
      if (!this.#strict && this.#o.requireStrictKex) {
        throw new ProtocolError(
          "the server does not offer strict key exchange (kex-strict-s-v00@openssh.com); requireStrictKex is on",
        );
      }
    }
    if (!this.#ours) this.#sendKexInit();
    const n = negotiate(this.#oursInit!, server, (c) => CIPHERS[c]?.aead === true);
    if (server.firstKexFollows && (server.kex[0] !== n.kex || server.hostKey[0] !== n.hostKey)) {
      this.#ignoreNextKex = true;
    }
    this.negotiated = n;
    this.#eph = await startKex(n.kex);
    if (this.#closed) return;
    this.#writePacket(
      new SshWriter(64).byte(SSH_MSG.KEX_ECDH_INIT).bytes(this.#eph.publicKey).finish(),
    );
  }

  async #onEcdhReply(p: Uint8Array): Promise<void> {
    const eph = this.#eph;
    const n = this.negotiated;
    if (!eph || !n || !this.#ours || !this.#theirs)
      throw new ProtocolError("KEX_ECDH_REPLY without a key exchange");
    this.#eph = undefined;
    const r = new SshReader(p, 1);
    const hostKey = r.bytes(8192).slice();
    const serverPublic = r.bytes(256).slice();
    const sig = r.bytes(8192).slice();
    r.end("KEX_ECDH_REPLY");
    const k = await eph.derive(serverPublic);
    const h = exchangeHash({
      clientIdent: CLIENT_IDENT,
      serverIdent: this.serverIdent,
      clientKexInit: this.#ours,
      serverKexInit: this.#theirs,
      hostKey,
      clientPublic: eph.publicKey,
      serverPublic,
      sharedSecret: k,
    });
    if (!(await verifySshSignature(n.hostKey, hostKey, sig, h))) {
      throw new PeerVerificationError(
        "bad-signature",
        `host key signature over the exchange hash does not verify (${n.hostKey})`,
      );
    }
    if (this.#first) {
      // The key proved possession; now decide whether we trust it. Nothing secret was sent yet.
      this.peer = await this.#o.verifier.verify(this.#o.host, this.#o.port, hostKey, n.hostKey);
      this.#hostKey = hostKey;
      this.sessionId = h;
    } else if (!equalBytes(hostKey, this.#hostKey!)) {
      throw new PeerVerificationError(
        "host-key-mismatch",
        "the host key changed during a key re-exchange",
      );
    }
    if (this.#closed) return;
    const sid = this.sessionId!;
    const cs = CIPHERS[n.cipherC2S]!;
    const sc = CIPHERS[n.cipherS2C]!;
    const macC = n.macC2S ? MACS[n.macC2S]!.keyLength : 0;
    const macS = n.macS2C ? MACS[n.macS2C]!.keyLength : 0;
    const c2s = {
      iv: deriveKey(k, h, "A", sid, cs.ivLength),
      key: deriveKey(k, h, "C", sid, cs.keyLength),
      macKey: deriveKey(k, h, "E", sid, macC),
    };
    const s2c = {
      iv: deriveKey(k, h, "B", sid, sc.ivLength),
      key: deriveKey(k, h, "D", sid, sc.keyLength),
      macKey: deriveKey(k, h, "F", sid, macS),
    };
    this.#nextOpener = makeOpener(n.cipherS2C, n.macS2C, s2c);
    this.#writePacket(new Uint8Array([SSH_MSG.NEWKEYS]));
    this.#encoder.sealer = makeSealer(n.cipherC2S, n.macC2S, c2s);
    if (this.#strict) this.#encoder.seq = 0;
    this.#blocked = false;
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    for (const m of pending) this.#writePacket(m.head, m.body);
    this.#wakeWriters();
  }

  #onNewKeys(): void {
    if (!this.#nextOpener) throw new ProtocolError("NEWKEYS before the key exchange finished");
    this.#decoder.opener = this.#nextOpener;
    this.#nextOpener = undefined;
    if (this.#strict) this.#decoder.seq = 0;
    this.#ours = undefined;
    this.#oursInit = undefined;
    this.#theirs = undefined;
    this.#bytes = 0;
    this.#packets = 0;
    this.kexCount++;
    clearTimeout(this.#rekeyTimer);
    this.#rekeyTimer = setTimeout(() => this.rekey(), this.#o.rekeyIntervalMs);
    if (this.#first) {
      this.#first = false;
      this.#ready.resolve();
    }
  }
}
