/**
 * Keeps one password holder from using up the server's file descriptors.
 * Every stream the server carries holds one fd (its target socket, TCP or
 * UDP) and every session one (its WebSocket); when the process runs out,
 * every user's tunnels fail at once. So streams and sessions get shares of
 * RLIMIT_NOFILE measured at start: a process-wide stream limit, a
 * per-session share of it (half: one session's flood leaves the other half
 * to everyone else), and a session limit, with spare fds kept for the
 * listener, handshakes in progress and the brief duplicate a handoff makes.
 */
import { maxFds, openFds } from '../util/fds';

/** Fds kept aside for the listeners, accepts and handshakes in progress, DNS, logs. */
export const FD_SPARE = 64;

export interface FdPlan {
  /** The soft limit the plan came from. */
  limit: number;
  /** Streams (target sockets) the whole process may hold. */
  streams: number;
  /** Streams one session may hold. */
  perSession: number;
  /** Sessions the process may hold (never above --max-sessions). */
  sessions: number;
}

/**
 * Splits what is left of `limit` after the fds `inUse` now and FD_SPARE:
 * a quarter (at most `maxSessions`) for sessions, each reserved twice (its
 * socket, and the duplicate while it is handed over), the rest for streams.
 */
export function planFds(limit: number, inUse: number, maxSessions: number): FdPlan {
  const free = Math.max(0, limit - inUse - FD_SPARE);
  const sessions = Math.max(1, Math.min(maxSessions, Math.floor(free / 4)));
  const streams = Math.max(1, free - 2 * sessions);
  return { limit, streams, perSession: Math.max(1, Math.ceil(streams / 2)), sessions };
}

/** The plan for this process now, or undefined where the limit cannot be read (no /proc). */
export function currentFdPlan(maxSessions: number): FdPlan | undefined {
  const limit = maxFds();
  const inUse = openFds();
  return limit === undefined || inUse === undefined ? undefined : planFds(limit, inUse, maxSessions);
}

/** Counts the streams each session holds against the plan's limits. */
export class StreamSlots<S> {
  private used = 0;
  private readonly held = new Map<S, Set<number>>();

  constructor(readonly plan: Pick<FdPlan, 'streams' | 'perSession'>) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes a slot for `stream`, or says which limit refuses it. */
  take(session: S, stream: number): string | undefined {
    let mine = this.held.get(session);
    if (this.used >= this.plan.streams) return `server at its stream limit (${this.plan.streams}, from the file descriptor limit)`;
    if ((mine?.size ?? 0) >= this.plan.perSession) return `session at its share of streams (${this.plan.perSession}, half the server's)`;
    if (!mine) this.held.set(session, (mine = new Set()));
    if (!mine.has(stream)) {
      mine.add(stream);
      this.used++;
    }
    return undefined;
  }

  release(session: S, stream: number): void {
    const mine = this.held.get(session);
    if (mine?.delete(stream)) this.used--;
  }

  /** The session ended: whatever it still held is free. */
  releaseSession(session: S): void {
    const mine = this.held.get(session);
    if (!mine) return;
    this.used -= mine.size;
    this.held.delete(session);
  }
}
