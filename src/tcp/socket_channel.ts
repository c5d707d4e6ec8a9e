/**
 * A Channel over a runtime stream socket ({@link RawConn}): plain TCP, Unix
 * sockets and, with a verified peer, TLS sockets.
 *
 * @module
 */

import type { RawConn } from "../_runtime/net.ts";
import { BaseChannel } from "../channel/base_channel.ts";
import type { ChannelConfig } from "../channel/config.ts";
import {
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

/** A {@link BaseChannel} whose wire is a {@link RawConn}. */
export class SocketChannel extends BaseChannel {
  readonly #conn: RawConn;

  constructor(conn: RawConn, peer: PeerIdentity, config?: Partial<ChannelConfig>) {
    super({ peer, config });
    this.#conn = conn;
    conn.attach({
      onData: (chunk) => this._push(chunk),
      onEnd: () => this._pushEnd(),
      onError: (err) => this._fail(mapSocketError(err, false)),
      onClose: () => {
        const s = this.state;
        if (s !== "releasing" && s !== "closed") {
          this._fail(new ChannelResetError("connection closed before both sides finished"));
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

  protected _send(chunk: Uint8Array): void | Promise<void> {
    if (this.#conn.write(chunk)) return;
    return this.#conn.drained();
  }

  protected _sendEnd(): Promise<void> {
    return this.#conn.end().catch((err) => {
      throw new ChannelResetError("connection closed before end-of-stream was sent", {
        cause: err,
      });
    });
  }

  protected _resume(): void {
    this.#conn.resume();
  }

  protected _release(): void {
    this.#conn.destroy();
  }

  protected _destroy(reset: boolean): void {
    if (reset) this.#conn.reset();
    else this.#conn.destroy();
  }
}
