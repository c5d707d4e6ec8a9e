/**
 * One tunneled connection of a Konnectivity session, as a spokewire Channel.
 *
 * @module
 */

import { BaseChannel } from "../channel/base_channel.ts";
import type { ChannelConfig } from "../channel/config.ts";
import type { SpokewireError } from "../channel/errors.ts";
import type { PeerIdentity } from "../channel/types.ts";

/** What a tunneled channel asks of its session. Implemented by the session. */
export interface TunnelPort {
  /** Send bytes on the connection (flow-controlled). */
  send(chunk: Uint8Array): void | Promise<void>;
  /** Send HALF_CLOSE after everything sent so far. */
  sendEnd(): void;
  /** The reader consumed bytes: grant credit if due. */
  resume(): void;
  /** Both directions ended cleanly: release the connection id. */
  release(): void;
  /** Tear down now; `reset` true makes the peer see CHANNEL_RESET. */
  destroy(reset: boolean): void;
}

/** What the session passes to create a {@link TunnelChannel}. */
export interface TunnelChannelInit {
  readonly peer: PeerIdentity;
  readonly connectID: number;
  /** The address that was dialed. */
  readonly address: string;
  readonly config: Partial<ChannelConfig>;
  readonly port: TunnelPort;
}

/**
 * A tunneled connection. Created only by a {@link KonnectivitySession}
 * (`dial()` on one side, `IncomingDial.accept()` on the other); its `peer` is
 * the session's verified peer.
 */
export class TunnelChannel extends BaseChannel {
  /** The connection id on the wire. */
  readonly connectID: number;
  /** The address that was dialed through the tunnel. */
  readonly address: string;
  readonly #port: TunnelPort;

  constructor(init: TunnelChannelInit) {
    super({ peer: init.peer, config: init.config });
    this.connectID = init.connectID;
    this.address = init.address;
    this.#port = init.port;
  }

  protected _send(chunk: Uint8Array): void | Promise<void> {
    return this.#port.send(chunk);
  }
  protected _sendEnd(): void {
    this.#port.sendEnd();
  }
  protected _resume(): void {
    this.#port.resume();
  }
  protected _release(): void {
    this.#port.release();
  }
  protected _destroy(reset: boolean): void {
    this.#port.destroy(reset);
  }

  /** @internal session: bytes from the peer. */
  deliver(chunk: Uint8Array): void {
    this._push(chunk);
  }
  /** @internal session: the peer half-closed. */
  deliverEnd(): void {
    this._pushEnd();
  }
  /** @internal session: the connection was reset or the session died. */
  fail(error: SpokewireError): void {
    this._fail(error);
  }
  /** @internal session: bytes delivered that the reader has not taken. */
  get queuedReadBytes(): number {
    return this._queuedReadBytes;
  }
}
