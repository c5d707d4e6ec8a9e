import { memoryPair } from "../../mod.ts";
import { describeChannelConformance } from "../../src/testing/mod.ts";

describeChannelConformance({
  name: "memory",
  // 1 MiB read buffer + 64 KiB write queue + one chunk in flight.
  bufferBound: 1024 * 1024 + 64 * 1024 + 64 * 1024,
  pair: async () => memoryPair(),
});
