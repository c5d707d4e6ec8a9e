/**
 * The Konnectivity packet vocabulary: upstream's `Packet` plus spokewire's
 * additions (window updates, half-close, ping/pong, go-away). See SPEC.md.
 *
 * @module
 */

/** `Packet.type` values (protobuf enum `PacketType`). */
export const PacketType = {
  /** Ask the peer to dial `address` (upstream). */
  DIAL_REQ: 0,
  /** Answer to a DIAL_REQ: a connectID or an error (upstream). */
  DIAL_RSP: 1,
  /** Close (or reset) a connection; the first close packet of a connection (upstream). */
  CLOSE_REQ: 2,
  /** Answer to a CLOSE_REQ; the peer's close packet (upstream). */
  CLOSE_RSP: 3,
  /** Bytes of a connection (upstream). */
  DATA: 4,
  /** Cancel a pending dial by its dial id (upstream; honoured here). */
  DIAL_CLS: 5,
  /** Agent hint: "I am shutting down, prefer other agents" (upstream). */
  DRAIN: 6,
  /** Grant send credit on one connection (spokewire). */
  WINDOW_UPDATE: 7,
  /** End of one direction of a connection (spokewire). */
  HALF_CLOSE: 8,
  /** Keepalive probe (spokewire). */
  PING: 9,
  /** Keepalive answer (spokewire). */
  PONG: 10,
  /** Last packet of a session, with an error code (spokewire). */
  GO_AWAY: 11,
} as const;

/** One of the {@link PacketType} values. */
export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];

/** `GoAway.code` values (protobuf enum `GoAwayCode`). */
export const GoAwayCode = {
  /** Plain shutdown. */
  NO_ERROR: 0,
  /** The peer broke the wire protocol (malformed packet, unknown id, illegal order). */
  PROTOCOL_ERROR: 1,
  /** The peer sent beyond its window, or overflowed a window. */
  FLOW_CONTROL_ERROR: 2,
  /** Nothing arrived within the keepalive timeout after a PING. */
  KEEPALIVE_TIMEOUT: 3,
  /** The peer made this side buffer more control traffic than allowed. */
  OVERLOAD: 4,
  /** This side failed on its own. */
  INTERNAL_ERROR: 5,
} as const;

/** One of the {@link GoAwayCode} values (or an unknown number received from a peer). */
export type GoAwayCodeValue = (typeof GoAwayCode)[keyof typeof GoAwayCode];

/** Protobuf field numbers of the `Packet` oneof payload, by packet type. */
export const PayloadField = {
  /** `Packet.dialRequest` */
  DIAL_REQ: 2,
  /** `Packet.dialResponse` */
  DIAL_RSP: 3,
  /** `Packet.data` */
  DATA: 4,
  /** `Packet.closeRequest` */
  CLOSE_REQ: 5,
  /** `Packet.closeResponse` */
  CLOSE_RSP: 6,
  /** `Packet.closeDial` */
  DIAL_CLS: 7,
  /** `Packet.drain` */
  DRAIN: 8,
  /** `Packet.windowUpdate` */
  WINDOW_UPDATE: 9,
  /** `Packet.halfClose` */
  HALF_CLOSE: 10,
  /** `Packet.ping` */
  PING: 11,
  /** `Packet.pong` */
  PONG: 12,
  /** `Packet.goAway` */
  GO_AWAY: 13,
} as const;

/** Window a `DialRequest`/`DialResponse` with `window = 0` stands for. */
export const KONNECTIVITY_DEFAULT_WINDOW = 65_536;
/** Largest legal window (and credit), as in HTTP/2. */
export const KONNECTIVITY_MAX_WINDOW = 0x7fff_ffff;

/** DIAL_REQ: ask the peer to dial. */
export interface DialRequestPacket {
  readonly type: typeof PacketType.DIAL_REQ;
  readonly protocol: string;
  readonly address: string;
  /** The dial id. */
  readonly random: number;
  /** The dialer's receive window for this connection (0 = {@link KONNECTIVITY_DEFAULT_WINDOW}). */
  readonly window: number;
  /**
   * spokewire extension (field 5): the verified identity on whose behalf the
   * server dials (e.g. the CONNECT client's certificate name), for the agent's
   * per-caller allow-list. Absent for an anonymous caller; upstream peers ignore it.
   */
  readonly caller?: string;
}
/** DIAL_RSP: answer to a dial. */
export interface DialResponsePacket {
  readonly type: typeof PacketType.DIAL_RSP;
  /** Empty on success. */
  readonly error: string;
  /** 0 on failure. */
  readonly connectID: number;
  readonly random: number;
  /** The acceptor's receive window (0 = {@link KONNECTIVITY_DEFAULT_WINDOW}). */
  readonly window: number;
}
/** DATA: bytes of one connection. */
export interface DataPacket {
  readonly type: typeof PacketType.DATA;
  readonly connectID: number;
  /** Upstream defines it and never sets it; receivers ignore it. */
  readonly error: string;
  readonly data: Uint8Array;
}
/** CLOSE_REQ: this side is done with the connection. */
export interface CloseRequestPacket {
  readonly type: typeof PacketType.CLOSE_REQ;
  readonly connectID: number;
  /** Optional reason, for logs only. */
  readonly error: string;
}
/** CLOSE_RSP: answer to CLOSE_REQ. */
export interface CloseResponsePacket {
  readonly type: typeof PacketType.CLOSE_RSP;
  readonly error: string;
  readonly connectID: number;
}
/** DIAL_CLS: cancel a dial. */
export interface CloseDialPacket {
  readonly type: typeof PacketType.DIAL_CLS;
  readonly random: number;
}
/** DRAIN: the agent is shutting down. */
export interface DrainPacket {
  readonly type: typeof PacketType.DRAIN;
}
/** WINDOW_UPDATE: more send credit on one connection. */
export interface WindowUpdatePacket {
  readonly type: typeof PacketType.WINDOW_UPDATE;
  readonly connectID: number;
  readonly credit: number;
}
/** HALF_CLOSE: no more DATA from the sender on this connection. */
export interface HalfClosePacket {
  readonly type: typeof PacketType.HALF_CLOSE;
  readonly connectID: number;
}
/** PING: keepalive probe. */
export interface PingPacket {
  readonly type: typeof PacketType.PING;
  readonly opaque: number;
}
/** PONG: keepalive answer echoing the PING's `opaque`. */
export interface PongPacket {
  readonly type: typeof PacketType.PONG;
  readonly opaque: number;
}
/** GO_AWAY: the session ends. */
export interface GoAwayPacket {
  readonly type: typeof PacketType.GO_AWAY;
  readonly code: number;
  readonly message: string;
}

/** Every packet, discriminated by `type`. */
export type Packet =
  | DialRequestPacket
  | DialResponsePacket
  | DataPacket
  | CloseRequestPacket
  | CloseResponsePacket
  | CloseDialPacket
  | DrainPacket
  | WindowUpdatePacket
  | HalfClosePacket
  | PingPacket
  | PongPacket
  | GoAwayPacket;

const TYPE_NAMES: readonly string[] = Object.keys(PacketType);
const CODE_NAMES: readonly string[] = Object.keys(GoAwayCode);

/** The name of a packet type, e.g. `"DIAL_REQ"`, or `"TYPE_<n>"` for an unknown one. */
export function packetTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE_${type}`;
}

/** The name of a go-away code, e.g. `"PROTOCOL_ERROR"`, or `"CODE_<n>"`. */
export function goAwayCodeName(code: number): string {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);
}

/**
 * A one-line description of a packet for logs and test names. Never includes
 * DATA bytes, only their length.
 *
 * @example
 * ```ts
 * import { describePacket, PacketType } from "./packet.ts";
 * const s = describePacket({ type: PacketType.WINDOW_UPDATE, connectID: 4, credit: 65536 });
 * if (s !== "WINDOW_UPDATE connectID=4 credit=65536") throw new Error(s);
 * ```
 */
export function describePacket(p: Packet): string {
  switch (p.type) {
    case PacketType.DIAL_REQ:
      return `DIAL_REQ random=${p.random} protocol=${quote(p.protocol)} address=${quote(p.address)} window=${p.window}`;
    case PacketType.DIAL_RSP:
      return p.error === ""
        ? `DIAL_RSP random=${p.random} connectID=${p.connectID} window=${p.window}`
        : `DIAL_RSP random=${p.random} error=${quote(p.error)}`;
    case PacketType.DATA:
      return `DATA connectID=${p.connectID} bytes=${p.data.byteLength}${p.error ? ` error=${quote(p.error)}` : ""}`;
    case PacketType.CLOSE_REQ:
      return `CLOSE_REQ connectID=${p.connectID}${p.error ? ` error=${quote(p.error)}` : ""}`;
    case PacketType.CLOSE_RSP:
      return `CLOSE_RSP connectID=${p.connectID}${p.error ? ` error=${quote(p.error)}` : ""}`;
    case PacketType.DIAL_CLS:
      return `DIAL_CLS random=${p.random}`;
    case PacketType.DRAIN:
      return "DRAIN";
    case PacketType.WINDOW_UPDATE:
      return `WINDOW_UPDATE connectID=${p.connectID} credit=${p.credit}`;
    case PacketType.HALF_CLOSE:
      return `HALF_CLOSE connectID=${p.connectID}`;
    case PacketType.PING:
      return `PING opaque=${p.opaque}`;
    case PacketType.PONG:
      return `PONG opaque=${p.opaque}`;
    case PacketType.GO_AWAY:
      return `GO_AWAY code=${goAwayCodeName(p.code)} message=${quote(p.message)}`;
  }
}
