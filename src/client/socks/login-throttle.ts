/**
 * Slows down password guessing on a SOCKS listener with logins: a failed
 * login is answered only after FAILED_LOGIN_DELAY_MS (the connection waits,
 * not the event loop), and a source with MAX_FAILURES failures within
 * FAILURE_WINDOW_MS has its logins refused for LOCKOUT_MS, right or wrong.
 * A source is an address as sourceKey spells it (an IPv6 /64 as one), but
 * on loopback a user name: any local user can send from any 127.x address,
 * so counting addresses there would give a local guesser millions of tries,
 * and counting all of loopback as one would let one local guesser lock
 * every local user out. The memory is bounded: at most MAX_SOURCES
 * entries, the oldest forgotten first.
 */
import { isLoopbackAddress, sourceKey, unmappedAddress } from '../../util/ip';
import { Logger, peerText, RateLimitedLog } from '../../util/log';

export const FAILED_LOGIN_DELAY_MS = 1000;
export const MAX_FAILURES = 10;
export const FAILURE_WINDOW_MS = 60_000;
export const LOCKOUT_MS = 5 * 60_000;
const MAX_SOURCES = 4096;

interface Record {
  failures: number;
  /** When the first failure counted now happened. */
  since: number;
  /** 0, or when the lockout ends. */
  lockedUntil: number;
}

/**
 * What failures are counted under: the address, or on loopback the user name
 * tried (`known`: one of the file's). Unknown names share one count, so a
 * guesser cannot make up names by the thousand to push a real user's count
 * out of the bounded memory.
 */
export function throttleKey(address: string, user: Buffer, known: boolean): string {
  const plain = unmappedAddress(address);
  if (!isLoopbackAddress(plain)) return sourceKey(plain);
  return known ? `user ${JSON.stringify(peerText(user.toString('utf8'), 64))} from loopback` : 'unknown users from loopback';
}

export class LoginThrottle {
  private readonly sources = new Map<string, Record>();
  private readonly lockouts: RateLimitedLog;

  constructor(logger: Logger, private readonly now: () => number = Date.now) {
    this.lockouts = new RateLimitedLog(logger, 'socks login lockouts');
  }

  /** Whether logins from `source` are refused now, right or wrong. */
  locked(source: string): boolean {
    const r = this.sources.get(source);
    return r !== undefined && r.lockedUntil > this.now();
  }

  /** A login from `source` failed; after MAX_FAILURES within the window, its logins are refused for LOCKOUT_MS. */
  failed(source: string): void {
    const now = this.now();
    let r = this.sources.get(source);
    if (!r || (r.lockedUntil === 0 && now - r.since > FAILURE_WINDOW_MS) || (r.lockedUntil !== 0 && r.lockedUntil <= now)) {
      r = { failures: 0, since: now, lockedUntil: 0 };
    }
    this.sources.delete(source);  // re-inserted last: the map's order is the order of last failure
    this.sources.set(source, r);
    r.failures++;
    if (r.failures >= MAX_FAILURES && r.lockedUntil === 0) {
      r.lockedUntil = now + LOCKOUT_MS;
      this.lockouts.line('warn', `socks: ${r.failures} failed logins from ${source} within ${FAILURE_WINDOW_MS / 1000} s; `
        + `refusing its logins for ${LOCKOUT_MS / 1000} s`);
    }
    if (this.sources.size > MAX_SOURCES) this.sources.delete(this.sources.keys().next().value!);
  }
}
