/**
 * A `direct-tcpip` channel (RFC 4254 §7.2) as a spokewire Channel: flow
 * control by SSH windows, half-close by CHANNEL_EOF, teardown by CHANNEL_CLOSE.
 *
 * SSH has no channel reset: `abort()` sends CHANNEL_CLOSE without EOF, which
 * sshd turns into a close of its socket to the target. A CHANNEL_CLOSE from
 * the server before both directions ended is reported as CHANNEL_RESET.
 *
 * @module
 */

import { deferred } from "../_util/deadline.ts";
import { BaseChannel } from "../channel/base_channel.ts";
import type { ChannelConfig } from "../channel/config.ts";
import {
  ChannelClosedError,
  ChannelResetError,
  ProtocolError,
  type SpokewireError,
} from "../channel/errors.ts";
import type { PeerIdentity } from "../channel/types.ts";
import { SSH_MSG } from "./constants.ts";
import { SshWriter } from "./wire.ts";

/** What a channel needs from its connection. */
export interface ChannelHost {
  /** Send a connection-layer message, optionally followed by raw bytes. */
  send(payload: Uint8Array, body?: Uint8Array): void;
  readonly congested: boolean;
  whenDrained(): Promise<void>;
  /** The channel is fully closed on both sides: free its id. */
  free(localId: number): void;
  /** The connection is alive. */
  readonly alive: boolean;
}

/** Parameters from CHANNEL_OPEN / OPEN_CONFIRMATION. */
export interface SshChannelInit {
  readonly localId: number;
  readonly remoteId: number;
  readonly remoteWindow: number;
  readonly remoteMaxPacket: number;
  readonly localWindow: number;
  readonly localMaxPacket: number;
  readonly peer: PeerIdentity;
  readonly config?: Partial<ChannelConfig>;
}

const MAX_WINDOW = 0xffffffff;

/** One direct-tcpip channel. Created by the connection, never by callers. */
export class SshChannel extends BaseChannel {
  readonly localId: number;
  readonly #remoteId: number;
  readonly #host: ChannelHost;
  #remoteWindow: number;
  readonly #remoteMaxPacket: number;
  readonly #windowSize: number;
  readonly #localMaxPacket: number;
  #localWindow: number;
  #unacked = 0;
  #paused = false;
  #pending: { data: Uint8Array; off: number; done: ReturnType<typeof deferred<void>> } | undefined;
  #sentEof = false;
  #gotEof = false;
  #sentClose = false;
  #gotClose = false;
  #dead = false;
  #closeWaiter = deferred<void>();

  constructor(host: ChannelHost, init: SshChannelInit) {
    super({ peer: init.peer, config: init.config });
    this.#host = host;
    this.localId = init.localId;
    this.#remoteId = init.remoteId;
    this.#remoteWindow = init.remoteWindow;
    this.#remoteMaxPacket = Math.max(1, Math.min(init.remoteMaxPacket, 256 * 1024));
    this.#windowSize = init.localWindow;
    this.#localWindow = init.localWindow;
    this.#localMaxPacket = init.localMaxPacket;
  }

  // ---- from the connection --------------------------------------------------------

  /** CHANNEL_DATA arrived. */
  onData(data: Uint8Array): void {
    if (this.#dead) return;
    if (data.byteLength > this.#localWindow || data.byteLength > this.#localMaxPacket) {
      this.#violation(`server sent ${data.byteLength} bytes with window ${this.#localWindow}`);
      return;
    }
    this.#localWindow -= data.byteLength;
    this.#unacked += data.byteLength;
    const more = this._push(data);
    if (!more) this.#paused = true;
    else if (this.#unacked >= this.#windowSize >>> 1) this.#adjust();
  }

  /** CHANNEL_EXTENDED_DATA: not used by direct-tcpip; account for it and drop it. */
  onExtendedData(n: number): void {
    if (this.#dead) return;
    if (n > this.#localWindow) {
      this.#violation("extended data beyond the window");
      return;
    }
    this.#localWindow -= n;
    this.#unacked += n;
    if (!this.#paused && this.#unacked >= this.#windowSize >>> 1) this.#adjust();
  }

  /** CHANNEL_WINDOW_ADJUST arrived. */
  onWindowAdjust(n: number): void {
    if (this.#dead) return;
    if (this.#remoteWindow + n > MAX_WINDOW) {
      this.#violation("window adjust overflows 2^32-1");
      return;
    }
    this.#remoteWindow += n;
    this.#pump();
  }

  /** CHANNEL_EOF arrived. */
  onEof(): void {
    this.#gotEof = true;
    if (!this.#dead) this._pushEnd();
  }

  /** CHANNEL_CLOSE arrived. */
  onClose(): void {
    this.#gotClose = true;
    if (!this.#dead && !(this.#gotEof && this.#sentEof)) {
      this.#dead = true;
      this._fail(
        new ChannelResetError("the SSH server closed the channel before both directions ended"),
      );
    }
    this.#sendClose();
    this.#closeWaiter.resolve();
    this.#host.free(this.localId);
  }

  /** The connection died. */
  onConnectionLost(err: SpokewireError): void {
    this.#gotClose = true;
    this.#closeWaiter.resolve();
    if (this.#dead) return;
    this.#dead = true;
    const e =
      err instanceof ChannelResetError
        ? err
        : new ChannelResetError(`SSH connection lost: ${err.message}`, { cause: err });
    this.#pending?.done.reject(e);
    this.#pending = undefined;
    this._fail(e);
  }

  /** The server's id for this channel. */
  get remoteId(): number {
    return this.#remoteId;
  }

  /** Whether the id can be reused. */
  get finished(): boolean {
    return this.#gotClose && this.#sentClose;
  }

  // ---- BaseChannel -------------------------------------------------------------

  protected _send(chunk: Uint8Array): void | Promise<void> {
    if (this.#dead || this.#sentEof) throw new ChannelClosedError("SSH channel is closed");
    const done = deferred<void>();
    this.#pending = { data: chunk, off: 0, done };
    this.#pump();
    if (!this.#pending && !this.#host.congested) return;
    return done.promise.then(() => this.#host.whenDrained());
  }

  protected async _sendEnd(): Promise<void> {
    if (this.#dead || !this.#host.alive) throw new ChannelResetError("SSH channel is gone");
    this.#sentEof = true;
    this.#host.send(new SshWriter(8).byte(SSH_MSG.CHANNEL_EOF).uint32(this.#remoteId).finish());
  }

  protected _resume(): void {
    if (this.#paused) {
      this.#paused = false;
      if (this.#unacked > 0) this.#adjust();
    }
  }

  protected _release(): Promise<void> {
    this.#sendClose();
    return this.#closeWaiter.promise;
  }

  protected _destroy(_reset: boolean): void {
    if (this.#dead && this.#sentClose) return;
    this.#dead = true;
    const e = new ChannelClosedError("SSH channel destroyed");
    this.#pending?.done.reject(e);
    this.#pending = undefined;
    this.#sendClose();
  }

  // ---- internals -------------------------------------------------------------------

  #pump(): void {
    const p = this.#pending;
    if (!p || this.#dead) return;
    while (p.off < p.data.byteLength && this.#remoteWindow > 0) {
      const n = Math.min(p.data.byteLength - p.off, this.#remoteWindow, this.#remoteMaxPacket);
      const head = new SshWriter(12)
        .byte(SSH_MSG.CHANNEL_DATA)
        .uint32(this.#remoteId)
        .uint32(n)
        .finish();
      this.#host.send(head, p.data.subarray(p.off, p.off + n));
      p.off += n;
      this.#remoteWindow -= n;
    }
    if (p.off >= p.data.byteLength) {
      this.#pending = undefined;
      p.done.resolve();
    }
  }

  #adjust(): void {
    const n = this.#unacked;
    if (n === 0 || this.#dead) return;
    this.#unacked = 0;
    this.#localWindow += n;
    this.#host.send(
      new SshWriter(12)
        .byte(SSH_MSG.CHANNEL_WINDOW_ADJUST)
        .uint32(this.#remoteId)
        .uint32(n)
        .finish(),
    );
  }

  #sendClose(): void {
    if (this.#sentClose) return;
    this.#sentClose = true;
    if (this.#host.alive) {
      this.#host.send(new SshWriter(8).byte(SSH_MSG.CHANNEL_CLOSE).uint32(this.#remoteId).finish());
    }
    if (this.#gotClose) this.#host.free(this.localId);
  }

  #violation(msg: string): void {
    this.#dead = true;
    this._fail(new ProtocolError(`SSH channel ${this.localId}: ${msg}`));
    this.#sendClose();
  }
}
