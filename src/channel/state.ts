/**
 * The channel state machine: one union, one transition function.
 *
 * @module
 */

/**
 * - `open`: both directions open
 * - `write-closed`: we sent end-of-stream; reading goes on
 * - `read-ended`: the peer sent end-of-stream; writing goes on
 * - `releasing`: both directions ended; the transport is being released
 * - `closed` | `aborted` | `reset`: terminal
 */
export type ChannelState =
  | "open"
  | "write-closed"
  | "read-ended"
  | "releasing"
  | "closed"
  | "aborted"
  | "reset";

/** What moves a channel from one state to another. */
export type ChannelEvent = "local-fin" | "remote-fin" | "released" | "abort" | "fail";

const TABLE: Readonly<Record<ChannelState, Partial<Record<ChannelEvent, ChannelState>>>> = {
  open: {
    "local-fin": "write-closed",
    "remote-fin": "read-ended",
    abort: "aborted",
    fail: "reset",
  },
  "write-closed": { "remote-fin": "releasing", abort: "aborted", fail: "reset" },
  "read-ended": { "local-fin": "releasing", abort: "aborted", fail: "reset" },
  releasing: { released: "closed", abort: "aborted", fail: "reset" },
  closed: {},
  aborted: {},
  reset: {},
};

/** Whether no event moves `state` any more. */
export function isTerminal(state: ChannelState): boolean {
  return state === "closed" || state === "aborted" || state === "reset";
}

/** The next state, or a thrown Error for an illegal move (a bug in the caller). */
export function transition(state: ChannelState, event: ChannelEvent): ChannelState {
  const next = TABLE[state][event];
  if (next === undefined) throw new Error(`illegal channel transition: ${event} in state ${state}`);
  return next;
}
