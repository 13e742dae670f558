/**
 * Answer ahead: a server session whose policy has no allow-list at all lets
 * its engine dial tcp streams to IP literals without asking JavaScript
 * first (native engine only: EngineSession.grantAhead). Policy stays here:
 * each such session's engine gets a reserve of fd-budget slots taken ahead
 * (a block, topped up when few are left, like the client's stream-id
 * blocks); each stream the engine opened is bound to one of them; a reload
 * revokes every grant (the policy may have changed). A stream refused for
 * want of slots while reserves are out waits until they are back, so a
 * reserve never refuses what the budget would take: see AheadGrants.reclaim.
 * docs/architecture.md, "Answer ahead".
 */
import type { EngineSession } from '../engine/types';
import type { StreamSlots } from './fd-budget';

/** Slots a session's engine gets at a time, and how few left make it ask for more. */
export const AHEAD_BLOCK = 32;
export const AHEAD_LOW = 8;

/** One session's grant. */
export class AheadGrant {
  /** Slots granted to the engine and neither bound to a stream nor returned yet (JavaScript's view, one hop behind). */
  private reserved = 0;
  /** Revocations sent, and their `ahead-returned` answers come back (in order). */
  private sent = 0;
  private back = 0;
  /** Taken back for another stream's sake: no new grant until this session opens or ends a stream. */
  private held = false;
  /** Its session ended: nothing of it is coming back. */
  ended = false;
  /** Set by AheadGrants.add: says when a top-up must wait (while streams that waited for slots retry). */
  gate?: { mayTopUp(grant: AheadGrant): boolean };

  constructor(
    readonly session: EngineSession,
    private readonly slots: StreamSlots<EngineSession> | undefined,
    /** Whose share the session counts against (with --users), as in StreamSlots. */
    readonly party: string | undefined,
    private readonly timeoutMs: number,
    /** The session's --max-streams: the engine refuses OPENs past it, so slots beyond it would only sit idle. */
    private readonly maxStreams: number,
    /** Whether the session's policy now lets the engine decide (no allow-list at all). */
    private readonly allowed: () => boolean,
  ) {}

  /** Slots are out with the engine, or on their way back. */
  get holding(): boolean {
    return this.reserved > 0 || this.revoking;
  }

  /** A revocation is on its way: what it brings back is unknown until its answer. */
  private get revoking(): boolean {
    return this.sent > this.back;
  }

  /** Revocations sent so far: the answer to the last is back once answered(revocations) says so. */
  get revocations(): number {
    return this.sent;
  }

  /** The answers to the first `n` revocations are back. */
  answered(n: number): boolean {
    return this.back >= n;
  }

  /** Grants more when few are left and the policy and the fd budget allow. */
  topUp(): void {
    const s = this.session;
    // Not while a revocation is on its way either: what it brings back is for the streams waiting on it first.
    if (!s.grantAhead || s.closed || s.peerDraining || this.held || this.revoking || this.reserved > AHEAD_LOW || !this.allowed()) return;
    if (this.gate && !this.gate.mayTopUp(this)) return;
    const want = Math.min(AHEAD_BLOCK, this.maxStreams - s.streamCount) - this.reserved;
    const n = this.slots ? this.slots.reserve(s, want, this.party) : want;
    if (n <= 0) return;
    this.reserved += n;
    s.grantAhead(n, this.timeoutMs);
  }

  /** The engine opened `stream` on a reserve slot: the slot is the stream's now (released at its stream-closed). */
  opened(stream: number): void {
    this.reserved = Math.max(0, this.reserved - 1);
    this.slots?.bindReserved(this.session, stream);
    this.streamMoved();
  }

  /** A stream of this session opened (the usual way) or ended: grants may resume. */
  streamMoved(): void {
    this.held = false;
    this.topUp();
  }

  /** The engine stops dialling ahead; what it did not use comes back (returned()). `hold`: no new grant for now. */
  revoke(hold: boolean): void {
    if (hold) this.held = true;
    // One on its way already brings back everything unused (no grant is made
    // while it is out): a peer refused again and again must not make the
    // server send a revocation per refusal to every engine.
    if (this.reserved === 0 || this.revoking) return;
    this.sent++;
    this.session.revokeAhead?.();
  }

  /** The engine returned `n` unused slots (AheadGrants.returned then lets waiting streams take them before a new grant). */
  returned(n: number): void {
    this.back = Math.min(this.sent, this.back + 1);
    this.reserved = Math.max(0, this.reserved - n);
    this.slots?.unreserve(this.session, n);
  }
}

/**
 * Streams waiting for the same revocations to be answered: which revocation
 * of each grant they wait for, how many of those answers are still to come,
 * and who goes on once they are all back.
 */
interface Round {
  scope: unknown;
  awaits: Map<AheadGrant, number>;
  pending: number;
  retries: (() => void)[];
}

/** Every session's grant, and the streams waiting for reserves to come back. */
export class AheadGrants {
  private readonly grants = new Map<EngineSession, AheadGrant>();
  /**
   * Per grant, the rounds waiting on its revocations, oldest first (their
   * revocation numbers never decrease): an answer touches only its own
   * grant's rounds, so a flood of refused streams costs each answer nothing
   * more than the rounds it ends.
   */
  private readonly waits = new Map<AheadGrant, { n: number; round: Round }[]>();
  /** The newest round per scope: a reclaim waiting for the same revocations joins it rather than starting another. */
  private readonly latest = new Map<unknown, Round>();
  /**
   * Waiting streams are being retried: a grant that would top up now (a
   * retried stream opened, so its session's grant resumes) waits until the
   * last retry has run, or it would take the slots the next retry waited for.
   */
  private retrying = 0;
  private readonly deferred = new Set<AheadGrant>();

  add(session: EngineSession, grant: AheadGrant): void {
    grant.gate = this;
    this.grants.set(session, grant);
  }

  mayTopUp(grant: AheadGrant): boolean {
    if (this.retrying === 0) return true;
    this.deferred.add(grant);
    return false;
  }

  /** The session ended (its slots are free): streams waiting on its reserve may go on. */
  delete(session: EngineSession): void {
    const g = this.grants.get(session);
    if (!g) return;
    g.ended = true;
    this.grants.delete(session);
    this.advance(g);
  }

  /** The policy may have changed: every engine stops dialling ahead (grants resume under the new policy). */
  revokeAll(): void {
    for (const g of this.grants.values()) g.revoke(false);
  }

  /**
   * A stream of `session` (counted against `party`) was refused for want of
   * slots, and the reserves of `scope` are enough to admit it
   * (StreamSlots.reclaimScope): takes them back (every session's, the
   * party's sessions', or the session's own) and calls `retry` once they
   * are back (returned or their sessions gone); false, and nothing done,
   * when none of them is out.
   */
  reclaim(scope: 'server' | 'session' | 'user', session: EngineSession, party: string | undefined, retry: () => void): boolean {
    const counts = (g: AheadGrant): boolean => scope === 'server' || (scope === 'user' ? g.party === party : g.session === session);
    const out = [...this.grants.values()].filter((g) => g.holding && counts(g));
    if (out.length === 0) return false;
    // Each stream waits for the answers to the revocations sent for it (or
    // sent already), not for every grant to be idle at once: revocations
    // that keep overlapping (a peer at its limit reopening streams) must
    // not hold it back for ever.
    for (const g of out) g.revoke(true);
    const key = scope === 'server' ? scope : scope === 'user' ? `user\n${party ?? ''}` : session;
    const last = this.latest.get(key);
    if (last && out.every((g) => last.awaits.get(g) === g.revocations)) {
      last.retries.push(retry);
      return true;
    }
    const round: Round = { scope: key, awaits: new Map(), pending: 0, retries: [retry] };
    for (const g of out) {
      round.awaits.set(g, g.revocations);
      round.pending++;
      let queue = this.waits.get(g);
      if (!queue) this.waits.set(g, (queue = []));
      queue.push({ n: g.revocations, round });
    }
    this.latest.set(key, round);
    return true;
  }

  /** A grant's unused slots came back: the streams that waited for them may go on. */
  returned(grant: AheadGrant, n: number): void {
    grant.returned(n);
    // The streams that waited for these slots take them first; only then
    // may the session's engine get a new grant (if the policy still allows
    // and none is held back): granting first would take them again, and the
    // waiting stream would be refused after all.
    this.advance(grant);
    grant.topUp();
  }

  /** Rounds waiting on `g` whose answer is back (or whose session is gone) count it; those with nothing left go on. */
  private advance(g: AheadGrant): void {
    const queue = this.waits.get(g);
    if (!queue) return;
    let k = 0;
    while (k < queue.length && (g.ended || g.answered(queue[k]!.n))) k++;
    if (k === 0) return;
    const done: Round[] = [];
    for (const { round } of queue.splice(0, k)) {
      if (--round.pending > 0) continue;
      if (this.latest.get(round.scope) === round) this.latest.delete(round.scope);
      done.push(round);
    }
    if (queue.length === 0) this.waits.delete(g);
    this.retrying++;
    try {
      for (const round of done) for (const retry of round.retries) retry();
    } finally {
      this.retrying--;
    }
    if (this.retrying > 0) return;
    const deferred = [...this.deferred];
    this.deferred.clear();
    for (const grant of deferred) if (!grant.ended) grant.topUp();
  }
}
