/**
 * The `Tws-Auth` upgrade header (docs/protocol.md §2):
 * `v1 ts=<unix-ms> nonce=<b64url 16 bytes> mac=<b64url 32 bytes>[ user=<name>]`,
 * mac = HMAC-SHA256(password, "tws2-auth\n" + ts + "\n" + nonce + "\n" + user).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { addTo } from '../util/counts';

const HEADER_RE = /^v1 ts=(0|[1-9]\d{0,15}) nonce=([A-Za-z0-9_-]{22}) mac=([A-Za-z0-9_-]{43})(?: user=([^\s\x00-\x1f\x7f]{1,128}))?$/;

function mac(password: string, ts: string, nonce: string, user: string): Buffer {
  return createHmac('sha256', Buffer.from(password, 'utf8'))
    .update(`tws2-auth\n${ts}\n${nonce}\n${user}`, 'utf8')
    .digest();
}

/** Base64url without padding, checked to be canonical (re-encodes to the same text). */
function decodeB64url(text: string, bytes: number): Buffer | undefined {
  const buf = Buffer.from(text, 'base64url');
  if (buf.length !== bytes || buf.toString('base64url') !== text) return undefined;
  return buf;
}

/** Builds the header value for a client. `now` is unix ms (for tests). */
export function buildAuthHeader(password: string, user?: string, now = Date.now()): string {
  const ts = String(now);
  const nonce = randomBytes(16).toString('base64url');
  const m = mac(password, ts, nonce, user ?? '').toString('base64url');
  return `v1 ts=${ts} nonce=${nonce} mac=${m}` + (user ? ` user=${user}` : '');
}

export type AuthResult =
  | { ok: true; user: string | undefined; nonce: string; ts: number }
  | { ok: false; reason: string };

/** Looks up the password for a user (`undefined` = the shared password). */
export type PasswordLookup = (user: string | undefined) => string | undefined;

/**
 * Checks the header's syntax, MAC (constant time) and timestamp. Replays are
 * checked separately by ReplayCache, after the MAC, so that unauthenticated
 * junk can never fill the cache.
 */
export function verifyAuthHeader(
  value: string | string[] | undefined,
  lookup: PasswordLookup,
  windowMs: number,
  now = Date.now(),
): AuthResult {
  if (value === undefined) return { ok: false, reason: 'no Tws-Auth header' };
  if (Array.isArray(value)) return { ok: false, reason: 'more than one Tws-Auth header' };
  const m = HEADER_RE.exec(value);
  if (!m) return { ok: false, reason: 'malformed Tws-Auth header' };
  const [, tsText, nonce, macText, user] = m as unknown as [string, string, string, string, string | undefined];
  if (!decodeB64url(nonce, 16)) return { ok: false, reason: 'malformed nonce' };
  const given = decodeB64url(macText, 32);
  if (!given) return { ok: false, reason: 'malformed mac' };
  const password = lookup(user);
  // Unknown users still cost one HMAC so timing does not reveal which names exist.
  const expected = mac(password ?? 'tws-unknown-user', tsText, nonce, user ?? '');
  const macOk = timingSafeEqual(expected, given);
  if (password === undefined) return { ok: false, reason: user === undefined ? 'a user name is required' : `unknown user "${user}"` };
  if (!macOk) return { ok: false, reason: 'bad mac (wrong password?)' };
  const ts = Number(tsText);
  const skew = now - ts;
  if (Math.abs(skew) > windowMs) {
    return { ok: false, reason: `timestamp off by ${Math.round(skew / 1000)} s (window ${windowMs / 1000} s; check clocks)` };
  }
  return { ok: true, user, nonce, ts };
}

/**
 * Remembers accepted nonces for twice the replay window. Bounded: when full of
 * live entries it refuses new ones (fails closed) rather than forgetting. A
 * nonce given with a party (a user, with --users) counts against that party's
 * share, half the cache, so one user's handshakes cannot fill it for all.
 */
export class ReplayCache {
  private readonly seen = new Map<string, { expiry: number; party: string | undefined }>();
  /** Live entries per party. */
  private readonly held = new Map<string, number>();
  private readonly share: number;

  constructor(private readonly windowMs: number, private readonly maxEntries = 100_000) {
    this.share = Math.ceil(maxEntries / 2);
  }

  /** Records the nonce; false if it was already accepted (a replay), or the cache or the party's share of it is full. */
  accept(nonce: string, party?: string, now = Date.now()): { ok: true } | { ok: false; reason: string } {
    this.expire(now);
    if (this.seen.has(nonce)) return { ok: false, reason: 'replayed nonce' };
    if (this.seen.size >= this.maxEntries) return { ok: false, reason: 'replay cache full (too many handshakes)' };
    const mine = party === undefined ? 0 : this.held.get(party) ?? 0;
    if (party !== undefined && mine >= this.share) {
      return { ok: false, reason: `replay cache: ${partyName(party)} holds ${mine} nonces, its share (half the cache; too many handshakes)` };
    }
    this.seen.set(nonce, { expiry: now + 2 * this.windowMs, party });
    if (party !== undefined) this.held.set(party, mine + 1);
    return { ok: true };
  }

  get size(): number {
    return this.seen.size;
  }

  private expire(now: number): void {
    // Map iterates in insertion order and expiry times only grow, so stop at the first live one. A header is
    // accepted while its timestamp is within the window (both ends included): from one taken at ts - window,
    // the earliest, it is good up to and including ts + window, 2 × window later; so is its nonce here.
    for (const [nonce, { expiry, party }] of this.seen) {
      if (expiry >= now) break;
      this.seen.delete(nonce);
      if (party === undefined) continue;
      addTo(this.held, party, -1);
    }
  }
}

/** How a party is named in a log line: "user NAME", or the shared password's sessions (party ''). */
export function partyName(party: string): string {
  return party === '' ? 'the shared password' : `user ${party}`;
}
