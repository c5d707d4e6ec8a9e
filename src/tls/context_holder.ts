/**
 * The current TLS context of an endpoint, swappable at run time: live
 * rotation of certificate, key and CA bundle. Connections keep the context
 * they started with; new ones take the current one.
 *
 * @module
 */

import { createTlsContext, type TlsContext } from "../_runtime/tls.ts";
import { MalformedInputError } from "../channel/errors.ts";
import { checkPemCertificates, checkPemKey } from "./certificate.ts";
import {
  caList,
  type TlsCredentials,
  type TlsEndpointOptions,
  verifyTlsCredentials,
} from "./config.ts";

/** Holds the context in force and rebuilds it on rotation. */
export class ContextHolder {
  #context: TlsContext;
  #hasCert: boolean;
  #roots: readonly string[];
  readonly #opts: TlsEndpointOptions;
  readonly #needCert: boolean;

  constructor(opts: TlsEndpointOptions, needCert: boolean) {
    this.#opts = opts;
    this.#needCert = needCert;
    this.#context = this.#build(opts.credentials);
    this.#hasCert = opts.credentials.cert !== undefined;
    this.#roots = caList(opts.credentials.ca);
  }

  /** The context for the next connection. */
  get current(): TlsContext {
    return this.#context;
  }

  /** The CA bundle of the current context (PEM), or undefined when system roots are in use too. */
  get roots(): readonly string[] | undefined {
    return this.#opts.useSystemRoots === true ? undefined : this.#roots;
  }

  /** Whether the current credentials include a certificate. */
  get hasCert(): boolean {
    return this.#hasCert;
  }

  /** Swap in new credentials; throws (and keeps the old ones) if they do not load. */
  update(credentials: TlsCredentials): void {
    verifyTlsCredentials(credentials, this.#needCert);
    this.#context = this.#build(credentials);
    this.#hasCert = credentials.cert !== undefined;
    this.#roots = caList(credentials.ca);
  }

  #build(c: TlsCredentials): TlsContext {
    const ca = caList(c.ca);
    for (let i = 0; i < ca.length; i++) checkPemCertificates(ca[i], `credentials.ca[${i}]`);
    if (c.cert !== undefined) checkPemCertificates(c.cert, "credentials.cert");
    if (c.key !== undefined) checkPemKey(c.key, "credentials.key");
    try {
      return createTlsContext({
        cert: c.cert,
        key: c.key,
        // A client verifies its server with verifyChain alone (src/tls/verify_peer.ts),
        // so its TLS layer gets no roots: it then judges nothing (under Node it also
        // skips building the peer's certificate objects, ~1 ms a dial). A server keeps
        // them: they name the accepted CAs in its certificate request. With the
        // runtime's root store, the runtime's verdict is the one used.
        ca: this.#needCert || this.#opts.useSystemRoots === true ? caList(c.ca) : [],
        useSystemRoots: this.#opts.useSystemRoots === true,
        minVersion: this.#opts.minVersion ?? "TLSv1.3",
        ciphers: this.#opts.ciphers,
        server: this.#needCert,
      });
    } catch (err) {
      throw new MalformedInputError(`TLS credentials do not load: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
