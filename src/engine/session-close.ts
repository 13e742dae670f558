/**
 * How a session's end reads in the logs: one formatter for both engines and
 * both sides, so `down (…)` says the same thing whichever engine saw it.
 */
import { Logger, LogLevel, peerText } from '../util/log';
import type { SessionStats } from './types';

/** How logs name a session: `session#3`, or `session#3 (tws-rust)` for a legacy one (docs/legacy.md). */
export function sessionName(session: { id: number; protocol?: string }): string {
  return `session#${session.id}${session.protocol ? ` (${session.protocol})` : ''}`;
}

/** Words for a close code that came without a reason. */
const CLOSE_NAMES: Record<number, string> = {
  1000: 'normal', 1001: 'going away', 1002: 'protocol error', 1003: 'unsupported data', 1005: 'no status',
  1007: 'invalid data', 1008: 'policy violation', 1009: 'message too big', 1011: 'internal error', 1015: 'TLS failure',
};

/**
 * A close code and reason as logs show them: `1001 client shutting down`,
 * `1006 connection lost` (a connection that ended without a close frame;
 * what the engine knows of why follows: `: ECONNRESET`, `: peer silent for
 * 5004 ms`). The reason may be the peer's, so it is capped.
 */
export function describeClose(code: number, reason: string): string {
  const why = peerText(reason, 128);
  if (code === 1006) return `1006 connection lost${why ? `: ${why}` : ''}`;
  const words = why || CLOSE_NAMES[code];
  return words ? `${code} ${words}` : String(code);
}

/** A session's one `down` line, with how long it lived and its bytes: info for 1000/1001, warn otherwise. */
export function sessionDownLine(code: number, reason: string, startedAt: number, stats: SessionStats): [LogLevel, string] {
  const secs = ((Date.now() - startedAt) / 1000).toFixed(1);
  const level = code === 1000 || code === 1001 ? 'info' : 'warn';
  return [level, `down (${describeClose(code, reason)}) after ${secs}s in=${stats.bytesIn} out=${stats.bytesOut}`];
}

/** Writes a session's `down` line (sessionDownLine) to `log`. */
export function logSessionDown(log: Logger, code: number, reason: string, startedAt: number, stats: SessionStats): void {
  const [level, line] = sessionDownLine(code, reason, startedAt, stats);
  log[level](line);
}
