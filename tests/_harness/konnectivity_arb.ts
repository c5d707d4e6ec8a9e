/** fast-check arbitraries for Konnectivity packets, shared by the codec and session tests. */

import fc from "fast-check";
import { type Packet, PacketType } from "../../src/konnectivity/packet.ts";

/** Plain objects, so deepEqual against decoded packets compares prototypes equal. */
const NP = { noNullPrototype: true } as const;

const id = (): fc.Arbitrary<number> =>
  fc.oneof(fc.integer({ min: 0, max: 300 }), fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER));
const u32 = (): fc.Arbitrary<number> =>
  fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constant(0xffff_ffff), fc.nat());
const str = (): fc.Arbitrary<string> =>
  fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }));
const bytes = (): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: 300 });

/** Any encodable packet. */
export function arbPacket(): fc.Arbitrary<Packet> {
  return fc.oneof(
    fc.record(
      {
        type: fc.constant(PacketType.DIAL_REQ),
        protocol: str(),
        address: str(),
        random: id(),
        window: u32(),
        caller: fc.string({ minLength: 1, maxLength: 40 }),
      },
      { ...NP, requiredKeys: ["type", "protocol", "address", "random", "window"] },
    ),
    fc.record(
      {
        type: fc.constant(PacketType.DIAL_RSP),
        error: str(),
        connectID: id(),
        random: id(),
        window: u32(),
      },
      NP,
    ),
    fc.record(
      { type: fc.constant(PacketType.DATA), connectID: id(), error: str(), data: bytes() },
      NP,
    ),
    fc.record({ type: fc.constant(PacketType.CLOSE_REQ), connectID: id(), error: str() }, NP),
    fc.record({ type: fc.constant(PacketType.CLOSE_RSP), error: str(), connectID: id() }, NP),
    fc.record({ type: fc.constant(PacketType.DIAL_CLS), random: id() }, NP),
    fc.record({ type: fc.constant(PacketType.DRAIN) }, NP),
    fc.record({ type: fc.constant(PacketType.WINDOW_UPDATE), connectID: id(), credit: u32() }, NP),
    fc.record({ type: fc.constant(PacketType.HALF_CLOSE), connectID: id() }, NP),
    fc.record({ type: fc.constant(PacketType.PING), opaque: id() }, NP),
    fc.record({ type: fc.constant(PacketType.PONG), opaque: id() }, NP),
    fc.record({ type: fc.constant(PacketType.GO_AWAY), code: u32(), message: str() }, NP),
  ) as fc.Arbitrary<Packet>;
}

/** Packets a misbehaving peer might send into a live session: small ids, small credits. */
export function arbPeerPacket(): fc.Arbitrary<Packet> {
  const sid = fc.integer({ min: 0, max: 12 });
  const win = fc.oneof(
    fc.integer({ min: 0, max: 4096 }),
    fc.constant(0x7fff_ffff),
    fc.constant(0xffff_ffff),
  );
  return fc.oneof(
    fc.record(
      {
        type: fc.constant(PacketType.DIAL_REQ),
        protocol: fc.constant("tcp"),
        address: fc.constantFrom("a:1", "b:2"),
        random: sid,
        window: win,
      },
      NP,
    ),
    fc.record(
      {
        type: fc.constant(PacketType.DIAL_RSP),
        error: fc.constantFrom("", "refused"),
        connectID: sid,
        random: sid,
        window: win,
      },
      NP,
    ),
    fc.record(
      {
        type: fc.constant(PacketType.DATA),
        connectID: sid,
        error: fc.constant(""),
        data: fc.uint8Array({ maxLength: 5000 }),
      },
      NP,
    ),
    fc.record(
      { type: fc.constant(PacketType.CLOSE_REQ), connectID: sid, error: fc.constant("") },
      NP,
    ),
    fc.record(
      { type: fc.constant(PacketType.CLOSE_RSP), error: fc.constant(""), connectID: sid },
      NP,
    ),
    fc.record({ type: fc.constant(PacketType.DIAL_CLS), random: sid }, NP),
    fc.record({ type: fc.constant(PacketType.DRAIN) }, NP),
    fc.record({ type: fc.constant(PacketType.WINDOW_UPDATE), connectID: sid, credit: win }, NP),
    fc.record({ type: fc.constant(PacketType.HALF_CLOSE), connectID: sid }, NP),
    fc.record({ type: fc.constant(PacketType.PING), opaque: sid }, NP),
    fc.record({ type: fc.constant(PacketType.PONG), opaque: sid }, NP),
    fc.record(
      {
        type: fc.constant(PacketType.GO_AWAY),
        code: fc.integer({ min: 0, max: 7 }),
        message: fc.constant("x"),
      },
      NP,
    ),
  ) as fc.Arbitrary<Packet>;
}
