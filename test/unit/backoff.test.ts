import t from 'tap';
import { Backoff } from '../../src/client/backoff';

t.test('delays stay below base × 2^n, capped', async (t) => {
  const b = new Backoff(1000, 30_000, 10_000, () => 0.999999);
  const delays = Array.from({ length: 8 }, () => b.next());
  t.same(delays, [999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]);
});

t.test('full jitter can pick zero and anything up to the ceiling', async (t) => {
  t.equal(new Backoff(1000, 30_000, 10_000, () => 0).next(), 0);
  const b = new Backoff(1000);
  for (let i = 0; i < 100; i++) {
    const d = b.next();
    t.ok(d >= 0 && d < 30_000);
  }
});

t.test('the failure count resets only after a session stayed up long enough', async (t) => {
  const b = new Backoff(1000, 30_000, 10_000, () => 0.5);
  b.next(); b.next(); b.next();
  b.sessionEnded(9_999);
  t.equal(b.attempts, 3);
  b.sessionEnded(10_000);
  t.equal(b.attempts, 0);
  t.equal(b.next(), 500);
});
