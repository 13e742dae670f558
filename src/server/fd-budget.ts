/**
 * Keeps one password holder from using up the server's file descriptors.
 * Every stream the server carries holds one fd (its target socket, TCP or
 * UDP) and every session one (its WebSocket); when the process runs out,
 * every user's tunnels fail at once. So streams and sessions get shares of
 * RLIMIT_NOFILE measured at start: a process-wide stream limit, a
 * per-session share of it (a quarter: a client has two sessions by default,
 * and its flood leaves half to everyone else), a per-user share (half, with
 * --users), and a session limit, with spare fds kept for the listener,
 * connections before their upgrade and the brief duplicate a handoff makes.
 */
import { maxFds, openFds } from '../util/fds';
import { addTo } from '../util/counts';

/** Fds kept aside for the listeners, accepts and handshakes in progress, DNS, logs. */
export const FD_SPARE = 64;

export interface FdPlan {
  /** The soft limit the plan came from. */
  limit: number;
  /** Streams (target sockets) the whole process may hold. */
  streams: number;
  /** Streams one session may hold. */
  perSession: number;
  /** Streams one user's sessions may hold together (with --users). */
  perUser: number;
  /** Sessions the process may hold (never above --max-sessions). */
  sessions: number;
  /** Connections before their upgrade (no password needed yet) the process may hold. */
  pending: number;
}

/**
 * Splits what is left of `limit` after the fds `inUse` now and FD_SPARE:
 * a sixteenth (8 to 1024) for connections before their upgrade, each
 * reserved three times (a TLS one in the native engine holds its socket and
 * a socketpair); a quarter of the rest (at most `maxSessions`) for
 * sessions, each reserved twice (its socket, and the duplicate while it is
 * handed over); the rest for streams.
 */
export function planFds(limit: number, inUse: number, maxSessions: number): FdPlan {
  const free = Math.max(0, limit - inUse - FD_SPARE);
  const pending = Math.min(1024, Math.max(8, Math.floor(free / 16)));
  const left = Math.max(0, free - 3 * pending);
  const sessions = Math.max(1, Math.min(maxSessions, Math.floor(left / 4)));
  const streams = Math.max(1, left - 2 * sessions);
  return { limit, streams, perSession: Math.max(1, Math.ceil(streams / 4)), perUser: Math.max(1, Math.ceil(streams / 2)), sessions, pending };
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
  /** Slots taken ahead for a session's engine to open streams on (answer ahead), not yet bound to a stream. */
  private readonly reserved = new Map<S, number>();
  /** Their sums, over every session and per user (kept as they change: a refused stream asks for them). */
  private reservedAll = 0;
  private readonly reservedOfUser = new Map<string, number>();
  /** Slots held per user, and whose sessions they are. */
  private readonly byUser = new Map<string, number>();
  private readonly userOf = new Map<S, string>();
  /** Connections waiting at reverse tunnels (holdWaiting). */
  private waiting = 0;

  constructor(readonly plan: Pick<FdPlan, 'streams' | 'perSession' | 'perUser'>) {}

  get inUse(): number {
    return this.used;
  }

  /** Which limit would refuse one more stream of `session` (of `user`, with --users), or undefined when none would. */
  limitHit(session: S, user?: string): 'server' | 'session' | 'user' | undefined {
    if (this.used >= this.plan.streams) return 'server';
    if (this.heldBy(session) >= this.plan.perSession) return 'session';
    if (user !== undefined && (this.byUser.get(user) ?? 0) >= this.plan.perUser) return 'user';
    return undefined;
  }

  /**
   * Which reserves (answer ahead) must come back for one more stream of
   * `session` to fit: the narrowest scope whose reserves are enough (the
   * session's own, its user's sessions', every session's), or undefined
   * when it fits now or when not even all of them would do (its own streams
   * fill a share): then nothing is taken back from anyone for nothing.
   */
  reclaimScope(session: S, user?: string): 'session' | 'user' | 'server' | undefined {
    if (this.limitHit(session, user) === undefined) return undefined;
    const all = this.reservedAll;
    const ofUser = user === undefined ? 0 : (this.reservedOfUser.get(user) ?? 0);
    const own = this.reserved.get(session) ?? 0;
    const streams = this.held.get(session)?.size ?? 0;
    const userCount = user === undefined ? 0 : (this.byUser.get(user) ?? 0);
    // Every scope holds the session's own reserve, so its share counts its streams alone after any of them.
    const fits = (back: number, userBack: number): boolean => this.used - back < this.plan.streams &&
      streams < this.plan.perSession && (user === undefined || userCount - userBack < this.plan.perUser);
    if (own > 0 && fits(own, own)) return 'session';
    if (ofUser > 0 && fits(ofUser, ofUser)) return 'user';
    if (all > 0 && fits(all, ofUser)) return 'server';
    return undefined;
  }

  /**
   * A connection waiting at a reverse tunnel for its client to come back
   * holds an fd and will be a stream: it takes a slot of the server's limit
   * until releaseWaiting(), and such connections together take at most a
   * session's share (anyone who reaches a reverse port can make one, so
   * they must not fill the server's streams). False, and nothing taken,
   * when either is full.
   */
  holdWaiting(): boolean {
    if (this.used >= this.plan.streams || this.waiting >= this.plan.perSession) return false;
    this.used++;
    this.waiting++;
    return true;
  }

  releaseWaiting(): void {
    this.used--;
    this.waiting--;
  }

  /** limitHit() in words for the refusal, or undefined when no limit would refuse. */
  full(session: S, user?: string): string | undefined {
    switch (this.limitHit(session, user)) {
      case 'server': return `server at its stream limit (${this.plan.streams}, from the file descriptor limit)`;
      case 'session': return `session at its share of streams (${this.plan.perSession}, a quarter of the server's)`;
      case 'user': return `user at its share of streams (${this.plan.perUser}, half the server's)`;
      default: return undefined;
    }
  }

  /** Takes a slot for `stream` of `session` (of `user`, with --users), or says which limit refuses it. */
  take(session: S, stream: number, user?: string): string | undefined {
    let mine = this.held.get(session);
    if (mine?.has(stream)) return undefined;
    const full = this.full(session, user);
    if (full) return full;
    if (!mine) this.held.set(session, (mine = new Set()));
    mine.add(stream);
    this.occupy(session, user);
    return undefined;
  }

  /**
   * Takes up to `n` slots ahead for `session` (answer ahead), as many as the
   * limits give, and never more than a sixteenth of what the server has
   * free: idle sessions must not hoard what others need. Returns how many.
   */
  reserve(session: S, n: number, user?: string): number {
    const want = Math.min(n, Math.floor((this.plan.streams - this.used) / 16));
    let got = 0;
    while (got < want && this.full(session, user) === undefined) {
      got++;
      this.occupy(session, user);
      this.setReserved(session, (this.reserved.get(session) ?? 0) + 1);
    }
    return got;
  }

  /** A slot taken ahead now holds `stream` (released with release()). */
  bindReserved(session: S, stream: number): void {
    const left = this.reserved.get(session) ?? 0;
    if (left === 0) return;
    this.setReserved(session, left - 1);
    let mine = this.held.get(session);
    if (!mine) this.held.set(session, (mine = new Set()));
    if (mine.has(stream)) return this.returnSlots(session, 1);
    mine.add(stream);
  }

  /** `n` slots taken ahead went unused: they are free. */
  unreserve(session: S, n: number): void {
    const k = Math.min(n, this.reserved.get(session) ?? 0);
    this.setReserved(session, (this.reserved.get(session) ?? 0) - k);
    this.returnSlots(session, k);
  }

  private setReserved(session: S, n: number): void {
    const delta = n - (this.reserved.get(session) ?? 0);
    if (n > 0) this.reserved.set(session, n);
    else this.reserved.delete(session);
    this.reservedAll += delta;
    const user = this.userOf.get(session);
    if (user === undefined || delta === 0) return;
    addTo(this.reservedOfUser, user, delta);
  }

  /** One more slot in use, counted against `user`'s share too (the twin of returnSlots). */
  private occupy(session: S, user: string | undefined): void {
    this.used++;
    if (user === undefined) return;
    this.userOf.set(session, user);
    addTo(this.byUser, user, 1);
  }

  private returnSlots(session: S, n: number): void {
    this.used -= n;
    this.userRelease(session, n);
  }

  private heldBy(session: S): number {
    return (this.held.get(session)?.size ?? 0) + (this.reserved.get(session) ?? 0);
  }

  release(session: S, stream: number): void {
    const mine = this.held.get(session);
    if (!mine?.delete(stream)) return;
    this.returnSlots(session, 1);
  }

  /** The session ended: whatever it still held is free. */
  releaseSession(session: S): void {
    const n = this.heldBy(session);
    if (n > 0) this.returnSlots(session, n);
    this.held.delete(session);
    this.setReserved(session, 0);
    this.userOf.delete(session);
  }

  private userRelease(session: S, n: number): void {
    const user = this.userOf.get(session);
    if (user === undefined) return;
    addTo(this.byUser, user, -n);
  }
}
