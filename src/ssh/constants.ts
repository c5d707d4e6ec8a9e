/**
 * SSH wire constants (RFC 4250-4254, RFC 8308, OpenSSH PROTOCOL).
 *
 * @module
 */

/** Message numbers. */
export const SSH_MSG = {
  /** RFC 4253 §11.1: the peer is going away. */
  DISCONNECT: 1,
  /** RFC 4253 §11.2: padding traffic, ignored. */
  IGNORE: 2,
  /** RFC 4253 §11.4: reply to an unknown message number. */
  UNIMPLEMENTED: 3,
  /** RFC 4253 §11.3: debug text, ignored. */
  DEBUG: 4,
  /** RFC 4253 §10. */
  SERVICE_REQUEST: 5,
  /** RFC 4253 §10. */
  SERVICE_ACCEPT: 6,
  /** RFC 8308: extension negotiation. */
  EXT_INFO: 7,
  /** RFC 4253 §7.1. */
  KEXINIT: 20,
  /** RFC 4253 §7.3. */
  NEWKEYS: 21,
  /** RFC 5656 §4 / RFC 8731: ECDH client public key. */
  KEX_ECDH_INIT: 30,
  /** RFC 5656 §4: server host key, public key and signature. */
  KEX_ECDH_REPLY: 31,
  /** RFC 4252 §5. */
  USERAUTH_REQUEST: 50,
  /** RFC 4252 §5.1. */
  USERAUTH_FAILURE: 51,
  /** RFC 4252 §5.1. */
  USERAUTH_SUCCESS: 52,
  /** RFC 4252 §5.4. */
  USERAUTH_BANNER: 53,
  /** RFC 4252 §7. */
  USERAUTH_PK_OK: 60,
  /** RFC 4254 §4. */
  GLOBAL_REQUEST: 80,
  /** RFC 4254 §4. */
  REQUEST_SUCCESS: 81,
  /** RFC 4254 §4. */
  REQUEST_FAILURE: 82,
  /** RFC 4254 §5.1. */
  CHANNEL_OPEN: 90,
  /** RFC 4254 §5.1. */
  CHANNEL_OPEN_CONFIRMATION: 91,
  /** RFC 4254 §5.1. */
  CHANNEL_OPEN_FAILURE: 92,
  /** RFC 4254 §5.2. */
  CHANNEL_WINDOW_ADJUST: 93,
  /** RFC 4254 §5.2. */
  CHANNEL_DATA: 94,
  /** RFC 4254 §5.2. */
  CHANNEL_EXTENDED_DATA: 95,
  /** RFC 4254 §5.3. */
  CHANNEL_EOF: 96,
  /** RFC 4254 §5.3. */
  CHANNEL_CLOSE: 97,
  /** RFC 4254 §5.4. */
  CHANNEL_REQUEST: 98,
  /** RFC 4254 §5.4. */
  CHANNEL_SUCCESS: 99,
  /** RFC 4254 §5.4. */
  CHANNEL_FAILURE: 100,
} as const;

/** Disconnect reason codes (RFC 4250 §4.2.2). */
export const SSH_DISCONNECT = {
  /** The peer broke the protocol. */
  PROTOCOL_ERROR: 2,
  /** Key exchange failed (no common algorithm, bad signature). */
  KEY_EXCHANGE_FAILED: 3,
  /** A MAC or AEAD tag did not verify. */
  MAC_ERROR: 5,
  /** The host key was not accepted. */
  HOST_KEY_NOT_VERIFIABLE: 9,
  /** We are closing on purpose. */
  BY_APPLICATION: 11,
} as const;

/** Channel open failure reason codes (RFC 4254 §5.1). */
export const SSH_OPEN = {
  /** The server's policy forbids this channel (e.g. `AllowTcpForwarding no`). */
  ADMINISTRATIVELY_PROHIBITED: 1,
  /** The server could not connect to the target. */
  CONNECT_FAILED: 2,
  /** The channel type is unknown. */
  UNKNOWN_CHANNEL_TYPE: 3,
  /** The server is out of resources. */
  RESOURCE_SHORTAGE: 4,
} as const;

/** A human name for a message number, for logs and errors. */
export function describeMessage(type: number): string {
  for (const [name, n] of Object.entries(SSH_MSG)) if (n === type) return `${name}(${type})`;
  return `unknown(${type})`;
}

/** The name strict kex adds to the client's first KEXINIT (OpenSSH PROTOCOL §1.10). */
export const STRICT_KEX_CLIENT = "kex-strict-c-v00@openssh.com";
/** The name a strict-kex server adds to its KEXINIT. */
export const STRICT_KEX_SERVER = "kex-strict-s-v00@openssh.com";
/** RFC 8308: the client accepts SSH_MSG_EXT_INFO. */
export const EXT_INFO_CLIENT = "ext-info-c";
