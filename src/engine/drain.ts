/**
 * A graceful stop of a server's or a client's sessions, the same for both:
 * GOAWAY to each (udp streams end at once), open streams get the drain
 * timeout to finish, then what is left is cut: the sessions close with 1001
 * and a reason saying how many streams were cut, and those streams end as
 * `drain timeout`.
 */
import { CloseCode, ResetCode } from '../protocol/constants';
import type { EngineSession } from './types';

/** How a stream the drain timeout cut ends (StreamClosedInfo.how). */
export const DRAIN_TIMEOUT = 'drain timeout';

/**
 * How long we wait for the sessions we closed to say so (ms): longer than
 * either engine waits for the peer's close frame (2 s) before it drops the
 * connection, so every session's close is seen and logged.
 */
const CLOSE_WAIT_MS = 3000;

/** `reason` for GOAWAY and the close, e.g. `server shutting down`; resolves once every session has closed. */
export async function drainSessions(sessions: readonly EngineSession[], drainMs: number, reason: string): Promise<void> {
  // Listening before anything can close: a session may close while it drains.
  const closed = Promise.all(sessions.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve()))));
  for (const s of sessions) s.goaway(ResetCode.GOING_AWAY, reason);
  const deadline = Date.now() + drainMs;
  while (sessions.some((s) => !s.closed && s.streamCount > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const s of sessions) {
    const cut = s.streamCount;
    const why = cut > 0 ? `${reason}; drain timeout cut ${cut} stream${cut === 1 ? '' : 's'}` : reason;
    s.close(CloseCode.GOING_AWAY, why, DRAIN_TIMEOUT);
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((r) => { timer = setTimeout(r, CLOSE_WAIT_MS); })]);
  clearTimeout(timer);
}
