/**
 * The server's name lookups, counted and given threads fairly.
 *
 * getaddrinfo runs on libuv's thread pool and cannot be cancelled, and libuv
 * runs at most half its pool's threads on lookups (2 of Node's default 4),
 * the rest waiting in its queue in order. So a peer opening streams to names
 * whose servers never answer would hold those threads and stall every
 * lookup queued after its own. Hence:
 * - lookups in flight (queued here or running) are capped per process, per
 *   session and, with --users, per user (half the process's), so one user
 *   cannot take every slot;
 * - lookups are handed to libuv only while it has a thread free for them, a
 *   user's at most half of those threads at once, so one user's hanging
 *   lookups always leave a thread to everyone else's, and a freed thread
 *   goes to the user served longest ago.
 */
export const MAX_LOOKUPS = 64;
export const MAX_SESSION_LOOKUPS = 16;
export const MAX_USER_LOOKUPS = MAX_LOOKUPS / 2;
/** Lookups libuv runs at once: (threads + 1) / 2 of its pool (UV_THREADPOOL_SIZE, default 4, at most 1024). */
export const LOOKUP_THREADS = Math.floor((Math.min(1024, Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4)) + 1) / 2);
/** Of those, what one user's lookups may hold (with --users). */
export const USER_LOOKUP_THREADS = Math.ceil(LOOKUP_THREADS / 2);

/** One user's lookups: in flight, and running on a thread. */
export interface UserLookups {
  n: number;
  running: number;
}

/** Whose lookups a stream's are: its session's and, with --users, its user's. */
export interface LookupOwner {
  lookups: { n: number };
  userLookups?: UserLookups;
}

let inFlight = 0;
let running = 0;
const waiting: { user: UserLookups | undefined; run: () => void }[] = [];

/** Takes a lookup slot for the owner, or says which limit refuses it. */
export function takeLookup(owner: LookupOwner): string | undefined {
  const user = owner.userLookups;
  if (inFlight >= MAX_LOOKUPS) return `too many name lookups in flight (${MAX_LOOKUPS}, the server's limit)`;
  if (owner.lookups.n >= MAX_SESSION_LOOKUPS) return `session at its share of name lookups (${MAX_SESSION_LOOKUPS})`;
  if (user && user.n >= MAX_USER_LOOKUPS) return `user at its share of name lookups (${MAX_USER_LOOKUPS}, half the server's)`;
  inFlight++;
  owner.lookups.n++;
  if (user) user.n++;
  return undefined;
}

/** Gives a slot back (the lookup settled, or never started). */
export function endLookup(owner: LookupOwner): void {
  inFlight--;
  owner.lookups.n--;
  if (owner.userLookups) owner.userLookups.n--;
}

/**
 * Runs `lookup`, in a slot taken for `owner`, once a thread is free for it;
 * `lookup` calls `done` when getaddrinfo settles, which gives back the
 * thread and the slot.
 */
export function runLookup(owner: LookupOwner, lookup: (done: () => void) => void): void {
  const user = owner.userLookups;
  waiting.push({
    user,
    run: () => lookup(() => {
      running--;
      if (user) user.running--;
      endLookup(owner);
      next();
    }),
  });
  next();
}

// When each party's lookup last got a thread (a turn number): a user, or,
// without --users, everyone as one party.
let turn = 0;
const EVERYONE = {};
const servedAt = new WeakMap<object, number>();

function lastServed(user: UserLookups | undefined): number {
  return servedAt.get(user ?? EVERYONE) ?? -1;
}

/**
 * Starts waiting lookups while threads are free: each freed thread goes to
 * the user served longest ago (among those under their share of threads),
 * that user's oldest lookup first. Oldest-first alone would let two users
 * with long queues take every thread turn after turn from a third.
 */
function next(): void {
  while (running < LOOKUP_THREADS) {
    let pick = -1;
    for (let i = 0; i < waiting.length; i++) {
      const w = waiting[i]!;
      if (w.user && w.user.running >= USER_LOOKUP_THREADS) continue;
      if (pick < 0 || lastServed(w.user) < lastServed(waiting[pick]!.user)) pick = i;
    }
    if (pick < 0) return;
    const w = waiting.splice(pick, 1)[0]!;
    running++;
    if (w.user) w.user.running++;
    servedAt.set(w.user ?? EVERYONE, ++turn);
    w.run();
  }
}
