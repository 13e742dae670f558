/**
 * Flow control of a tws-rust session, as pure rules. tws-rust has no credit:
 * a receiver whose write queue for a stream backs up sends `CONNECTION <id>
 * PAUSE`, and RESUME once it drained. A tws-rust peer may keep sending after
 * our PAUSE (its throttle is inverted, docs/legacy.md), so a stream whose
 * queue passes FLOOD_BYTES is closed, and all of a session's queues together
 * past the session budget stop us reading the WebSocket until they drain:
 * our memory stays bounded whatever the peer does.
 */

/** Send PAUSE when a stream's local write queue holds this many bytes. */
export const PAUSE_BYTES = 256 * 1024;
/** Send RESUME when a paused stream's queue drops to this many bytes. */
export const RESUME_BYTES = 64 * 1024;
/** A stream whose queue passes this after PAUSE is closed: the peer ignores PAUSE. */
export const FLOOD_BYTES = 8 * 1024 * 1024;
/** Stop reading local sockets while the WebSocket has this many bytes unsent. */
export const SEND_HIGH = 1024 * 1024;
/** Early data (payload before the stream is connected) a stream buffers; more closes it. */
export const EARLY_BYTES = 256 * 1024;
/** Datagrams a udp stream holds before it is connected; more are dropped. */
export const EARLY_DATAGRAMS = 16;

export type FlowVerdict = 'pause' | 'resume' | 'flood' | 'none';

/**
 * What a stream's queue of `queued` bytes calls for, given whether we have
 * sent PAUSE already: `flood` closes the stream, `pause`/`resume` are sent.
 */
export function writeQueueVerdict(queued: number, paused: boolean): FlowVerdict {
  if (queued > FLOOD_BYTES) return 'flood';
  if (!paused && queued >= PAUSE_BYTES) return 'pause';
  if (paused && queued <= RESUME_BYTES) return 'resume';
  return 'none';
}

/**
 * Whether the WebSocket is read, for a session whose streams' queues hold
 * `queued` bytes together against `budget` (SessionOptions.sessionBudget):
 * it stops at the budget and starts again at half.
 */
export function readsWebSocket(queued: number, budget: number, reading: boolean): boolean {
  if (reading) return queued < budget;
  return queued <= budget / 2;
}
