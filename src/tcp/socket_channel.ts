/**
 * A Channel over a runtime stream socket ({@link RawConn}): plain TCP, Unix
 * sockets and, with a verified peer, TLS sockets.
 *
 * @module
 */

import type { RawConn } from "../_runtime/net.ts";
import { type SocketHandoff, TAKE_SOCKET } from "../_runtime/socket_handoff.ts";
import { BaseChannel } from "../channel/base_channel.ts";
import type { ChannelConfig } from "../channel/config.ts";
import {
  ChannelClosedError,
  ChannelResetError,
  DialError,
  type SpokewireError,
  TimeoutError,
} from "../channel/errors.ts";
import type { PeerIdentity } from "../channel/types.ts";

const DIAL_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOENT",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EACCES",
]);

/** Map a runtime socket error to a spokewire error. `dialing`: it happened while connecting. */
export function mapSocketError(err: Error & { code?: string }, dialing: boolean): SpokewireError {
  const code = err.code ?? "UNKNOWN";
  if (dialing && code === "ETIMEDOUT") {
    return new TimeoutError(`connect timed out (${code})`, 0, { cause: err });
  }
  if (dialing || DIAL_CODES.has(code)) {
    return new DialError(`connect failed: ${code}: ${err.message}`, { cause: err });
  }
  return new ChannelResetError(`connection failed: ${code}: ${err.message}`, { cause: err });
}

/** How a connection ended before its peer sent a byte (see {@link SocketChannel}). */
export type EarlyEvent =
  | { readonly kind: "end" }
  | { readonly kind: "error"; readonly code?: string; readonly error?: Error };

/** A {@link BaseChannel} whose wire is a {@link RawConn}. */
export class SocketChannel extends BaseChannel {
  readonly #conn: RawConn;
  /** The socket belongs to a new owner (see {@link SocketChannel.[TAKE_SOCKET]}). */
  #handedOver = false;

  /**
   * `early`, when given, names what a close or failure before the first byte from the
   * peer means (a TLS client whose server has not yet shown it accepted our
   * certificate: a refusal), in place of a clean end of stream or a reset.
   */
  constructor(
    conn: RawConn,
    peer: PeerIdentity,
    config?: Partial<ChannelConfig>,
    early?: (e: EarlyEvent) => SpokewireError,
  ) {
    super({ peer, config });
    this.#conn = conn;
    let pending = early;
    conn.attach({
      onData: (chunk) => {
        pending = undefined;
        return this._push(chunk);
      },
      onEnd: () => {
        if (pending) this._fail(pending({ kind: "end" }));
        else this._pushEnd();
      },
      onError: (err) => {
        const code = (err as { code?: unknown }).code;
        if (pending) {
          this._fail(
            pending({
              kind: "error",
              code: typeof code === "string" ? code : undefined,
              error: err,
            }),
          );
        } else this._fail(mapSocketError(err, false));
      },
      onClose: () => {
        const s = this.state;
        if (s !== "releasing" && s !== "closed") {
          this._fail(
            pending?.({ kind: "end" }) ??
              new ChannelResetError("connection closed before both sides finished"),
          );
        }
      },
    });
  }

  /** Local address of the socket. */
  get localAddress(): string {
    return this.#conn.localAddress;
  }

  /** Remote address of the socket. */
  get remoteAddress(): string {
    return this.#conn.remoteAddress;
  }

  /**
   * Hand the socket to a new owner (see `src/_runtime/socket_handoff.ts`), if this
   * conn has one to give and the channel is idle: open both ways, neither stream
   * locked, no write pending. Bytes already queued for the reader go with it.
   */
  async [TAKE_SOCKET](): Promise<SocketHandoff | undefined> {
    if (this.#handedOver || this.state !== "open") return undefined;
    if (this.readable.locked || this.writable.locked) return undefined;
    const writer = this.writable.getWriter();
    const idle = writer.desiredSize === this.config.writeHighWaterMark;
    writer.releaseLock();
    if (!idle) return undefined;
    const socket = this.#conn.detach?.();
    if (socket === undefined) return undefined;
    this.#handedOver = true;
    const unread: Uint8Array[] = [];
    if (this._queuedReadBytes > 0) {
      const reader = this.readable.getReader();
      try {
        while (this._queuedReadBytes > 0) {
          const r = await reader.read();
          if (r.done) break;
          unread.push(r.value);
        }
      } finally {
        reader.releaseLock();
      }
    }
    return {
      socket,
      unread,
      finish: (error) => {
        if (error !== undefined) {
          this.abort(error);
          return;
        }
        // Both directions ended on the socket: end the channel's too, then release.
        this._pushEnd();
        this.close().catch(() => {});
      },
    };
  }

  protected _send(chunk: Uint8Array): void | Promise<void> {
    if (this.#handedOver) {
      throw new ChannelClosedError("write on a channel whose socket was handed over");
    }
    if (this.#conn.write(chunk)) return;
    return this.#conn.drained();
  }

  protected _sendEnd(): Promise<void> {
    // The new owner ended the socket itself.
    if (this.#handedOver) return Promise.resolve();
    return this.#conn.end().catch((err) => {
      throw new ChannelResetError("connection closed before end-of-stream was sent", {
        cause: err,
      });
    });
  }

  protected _resume(): void {
    // A handed-over socket flows for its new owner only.
    if (!this.#handedOver) this.#conn.resume();
  }

  protected _release(): void {
    if (!this.#handedOver) this.#conn.destroy();
  }

  protected _destroy(reset: boolean): void {
    if (reset) this.#conn.reset();
    else this.#conn.destroy();
  }
}
