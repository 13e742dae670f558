import t from 'tap';
import { createHmac } from 'node:crypto';
import { shortPasswordNote } from '../../src/auth/password-length';
import { buildAuthHeader, ReplayCache, verifyAuthHeader } from '../../src/auth/tws-auth';

const shared = (): string => 'pw';

t.test('a header built with the password verifies', async (t) => {
  const h = buildAuthHeader('pw');
  t.match(h, /^v1 ts=\d+ nonce=[A-Za-z0-9_-]{22} mac=[A-Za-z0-9_-]{43}$/);
  const r = verifyAuthHeader(h, shared, 30_000);
  t.equal(r.ok, true);
});

t.test('the MAC is HMAC-SHA256 over the documented message', async (t) => {
  const h = buildAuthHeader('pw', 'alice', 1_700_000_000_000);
  const m = /ts=(\d+) nonce=(\S+) mac=(\S+) user=(\S+)/.exec(h)!;
  const expected = createHmac('sha256', 'pw').update(`tws2-auth\n${m[1]}\n${m[2]}\nalice`).digest('base64url');
  t.equal(m[3], expected);
  t.equal(m[4], 'alice');
});

t.test('wrong password, bad syntax and stale timestamps are refused with a reason', async (t) => {
  const now = Date.now();
  t.match(verifyAuthHeader(buildAuthHeader('nope'), shared, 30_000), { ok: false, reason: /bad mac/ });
  t.match(verifyAuthHeader(undefined, shared, 30_000), { ok: false, reason: /no Tws-Auth/ });
  t.match(verifyAuthHeader('v1 ts=1 nonce=x mac=y', shared, 30_000), { ok: false, reason: /malformed/ });
  t.match(verifyAuthHeader(['a', 'b'], shared, 30_000), { ok: false });
  t.match(verifyAuthHeader(buildAuthHeader('pw', undefined, now - 31_000), shared, 30_000, now), { ok: false, reason: /timestamp/ });
  t.match(verifyAuthHeader(buildAuthHeader('pw', undefined, now + 31_000), shared, 30_000, now), { ok: false, reason: /timestamp/ });
  t.equal(verifyAuthHeader(buildAuthHeader('pw', undefined, now - 29_000), shared, 30_000, now).ok, true);
});

t.test('a non-canonical base64url nonce is refused', async (t) => {
  const h = buildAuthHeader('pw');
  const tampered = h.replace(/nonce=(\S{21})(\S)/, (_m, a: string, b: string) => `nonce=${a}${b === 'A' ? 'B' : 'A'}`);
  const r = verifyAuthHeader(tampered, shared, 30_000);
  t.equal(r.ok, false);
});

t.test('the user name selects the password', async (t) => {
  const lookup = (u: string | undefined): string | undefined => (u === 'alice' ? 'apw' : undefined);
  t.equal(verifyAuthHeader(buildAuthHeader('apw', 'alice'), lookup, 30_000).ok, true);
  t.match(verifyAuthHeader(buildAuthHeader('apw', 'bob'), lookup, 30_000), { ok: false, reason: /unknown user/ });
});

t.test('the replay cache refuses a nonce twice and forgets it after twice the window', async (t) => {
  const c = new ReplayCache(1000);
  t.equal(c.accept('n1', undefined, 0).ok, true);
  t.match(c.accept('n1', undefined, 1500), { ok: false, reason: /replayed/ });
  t.match(c.accept('n1', undefined, 2000), { ok: false, reason: /replayed/ }, 'still refused at exactly 2 × window');
  t.equal(c.accept('n1', undefined, 2001).ok, true, 'expired after 2 × window');
});

t.test('a header taken at the early edge of the window cannot be replayed at its late edge', async (t) => {
  const lookup = (): string => 'pw';
  const header = buildAuthHeader('pw');
  const ts = Number(/ts=(\d+)/.exec(header)![1]);
  const c = new ReplayCache(30_000);
  const first = verifyAuthHeader(header, lookup, 30_000, ts - 30_000);
  t.equal(first.ok && c.accept(first.nonce, undefined, ts - 30_000).ok, true, 'accepted when its clock is a whole window ahead');
  const again = verifyAuthHeader(header, lookup, 30_000, ts + 30_000);
  t.equal(again.ok, true, 'the header itself is still within the window');
  t.match(again.ok && c.accept(again.nonce, undefined, ts + 30_000), { ok: false, reason: /replayed/ }, 'but its nonce is remembered');
});

t.test('the replay cache is bounded and fails closed when full', async (t) => {
  const c = new ReplayCache(1000, 3);
  for (const n of ['a', 'b', 'c']) t.equal(c.accept(n, undefined, 0).ok, true);
  t.match(c.accept('d', undefined, 10), { ok: false, reason: /full/ });
  t.equal(c.size, 3);
  t.equal(c.accept('d', undefined, 2001).ok, true, 'room again once entries expire');
});

t.test("a party's nonces (a user's, with --users) fill at most half the cache, and free up as they expire", async (t) => {
  const c = new ReplayCache(1000, 4);
  for (const n of ['a1', 'a2']) t.equal(c.accept(n, 'alice', 0).ok, true);
  t.match(c.accept('a3', 'alice', 10), { ok: false, reason: /user alice holds 2 nonces, its share/ });
  t.equal(c.accept('s1', '', 10).ok, true, "another party's (the shared password's) still fit");
  t.equal(c.accept('b1', 'bob', 10).ok, true);
  t.match(c.accept('b2', 'bob', 10), { ok: false, reason: /full/ }, 'the whole cache still bounds them all');
  t.equal(c.accept('a3', 'alice', 2001).ok, true, "alice's share frees as her nonces expire");
});

t.test('a password shorter than 16 characters is worth a warning, naming the users who have one', async (t) => {
  t.equal(shortPasswordNote('0123456789abcdef'), undefined, '16 characters are enough');
  t.match(shortPasswordNote('hunter2'), /^the password is 7 characters long: whoever sees a handshake over plain ws:\/\/ can test guesses offline; use 16 or more/);
  t.equal(shortPasswordNote(undefined, [{ name: 'alice', passwd: 'a'.repeat(20) }]), undefined);
  t.match(shortPasswordNote(undefined, [{ name: 'alice', passwd: 'a'.repeat(20) }, { name: 'bob', passwd: 'pw' }]), /^user bob has a password shorter than 16 characters:/);
  const many = Array.from({ length: 7 }, (_, i) => ({ name: `u${i}`, passwd: 'x' }));
  t.match(shortPasswordNote('ok-but-short', many), /^the password is 12 characters long; users u0, u1, u2, u3, u4 and 2 more have a password shorter than 16/);
  t.equal(shortPasswordNote('ééééééééééééééé€'), undefined, 'characters, not bytes');
});
