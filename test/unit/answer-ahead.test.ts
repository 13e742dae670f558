/**
 * AheadGrants' bookkeeping of streams waiting for reserves to come back,
 * with stand-in sessions (what the engine would do is in
 * test/e2e/answer-ahead.test.ts): each waiting stream goes on once, after
 * exactly the answers it waits for, and an answer costs only the waits it
 * ends, however many streams wait.
 */
import t from 'tap';
import { AheadGrant, AheadGrants } from '../../src/server/answer-ahead';
import type { EngineSession } from '../../src/engine/types';
import { StreamSlots } from '../../src/server/fd-budget';

/** A session as AheadGrant sees it: counts what it is sent. */
function standIn(): EngineSession & { granted: number; revoked: number } {
  const s = {
    closed: false, peerDraining: false, streamCount: 0, granted: 0, revoked: 0,
    grantAhead(n: number) { s.granted += n; },
    revokeAhead() { s.revoked++; },
  };
  return s as unknown as EngineSession & { granted: number; revoked: number };
}

/** An AheadGrant that counts how often anyone asks whether an answer is back. */
class CountedGrant extends AheadGrant {
  static asked = 0;
  override answered(n: number): boolean {
    CountedGrant.asked++;
    return super.answered(n);
  }
}

function setUp(n: number): { grants: AheadGrants; all: CountedGrant[]; sessions: ReturnType<typeof standIn>[] } {
  const grants = new AheadGrants();
  const all: CountedGrant[] = [];
  const sessions = Array.from({ length: n }, standIn);
  for (const s of sessions) {
    const g = new CountedGrant(s, undefined, undefined, 1000, 1024, () => true);
    grants.add(s, g);
    g.topUp();
    all.push(g);
  }
  return { grants, all, sessions };
}

t.test('many streams refused while many reserves are out: one revocation each, every stream goes on once, after the last answer', async (t) => {
  const { grants, all, sessions } = setUp(64);
  t.ok(sessions.every((s) => s.granted === 32), 'each engine got a reserve');
  CountedGrant.asked = 0;
  let retried = 0;
  let waiting = 0;
  for (let i = 0; i < 2000; i++) if (grants.reclaim('server', sessions[0]!, undefined, () => retried++)) waiting++;
  t.equal(waiting, 2000, '2000 refused streams wait for the reserves');
  t.ok(sessions.every((s) => s.revoked === 1), 'one revocation per engine, not one per refused stream');
  let early = 0;
  for (const g of all) {
    early += retried;
    grants.returned(g, 32);
  }
  t.equal(early, 0, 'none goes on before the last answer');
  t.equal(retried, 2000, 'each waiting stream went on exactly once');
  // Settling used to ask each waiter about every grant at every answer (2000 × 64 × 64 here).
  t.ok(CountedGrant.asked <= 4 * (all.length + 2000), `answers cost what they end, not waiters × grants (${CountedGrant.asked} asked)`);
});

t.test('a stream waits only for the revocations sent for it, and a session gone counts as answered', async (t) => {
  const { grants, all, sessions } = setUp(2);
  const [a, b] = all as [CountedGrant, CountedGrant];
  const order: string[] = [];
  t.ok(grants.reclaim('server', sessions[0]!, undefined, () => order.push('first')));
  grants.returned(a, 32);
  a.streamMoved();  // a's engine gets a reserve again (a stream of it moved)
  t.ok(a.holding, 'a holds slots again');
  t.ok(grants.reclaim('server', sessions[0]!, undefined, () => order.push('second')), 'a second stream takes them back again');
  t.same(order, [], 'both wait for b');
  grants.delete(sessions[1]!);  // b's session ended: its slots are free
  t.same(order, ['first'], 'the first stream goes on: it never waited for the second revocation of a');
  grants.returned(a, 32);
  t.same(order, ['first', 'second'], 'the second goes on once that one is answered');
  t.equal(b.ended, true);
});

t.test('a reclaim limited to one session or one user takes back only those reserves', async (t) => {
  const grants = new AheadGrants();
  const s = [standIn(), standIn(), standIn()];
  const g = [
    new AheadGrant(s[0]!, undefined, 'alice', 1000, 1024, () => true),
    new AheadGrant(s[1]!, undefined, 'alice', 1000, 1024, () => true),
    new AheadGrant(s[2]!, undefined, 'bob', 1000, 1024, () => true),
  ];
  g.forEach((x, i) => { grants.add(s[i]!, x); x.topUp(); });
  grants.reclaim('session', s[0]!, 'alice', () => undefined);
  t.same(s.map((x) => x.revoked), [1, 0, 0], "the session's own");
  grants.reclaim('user', s[1]!, 'alice', () => undefined);
  t.same(s.map((x) => x.revoked), [1, 1, 0], "alice's sessions'");
  grants.reclaim('server', s[2]!, 'bob', () => undefined);
  t.same(s.map((x) => x.revoked), [1, 1, 1], "everyone's");
});

t.test("streams that waited for a reserve all get its slots before the engine's grant resumes", async (t) => {
  // A session's share of 40: its engine's reserve takes 32 and 8 streams opened the usual way the rest.
  const slots = new StreamSlots<EngineSession>({ streams: 1000, perSession: 40, perUser: 1000 });
  const grants = new AheadGrants();
  const session = standIn();
  const grant = new AheadGrant(session, slots, undefined, 1000, 1024, () => true);
  grants.add(session, grant);
  grant.topUp();
  t.equal(session.granted, 32);
  // As the server does: a refused stream waits for the reserve, then retries once; one that opens lets the grant resume.
  const outcome: string[] = [];
  const open = (id: number, retried: boolean): void => {
    const full = slots.take(session, id);
    if (full && !retried && grants.reclaim(slots.reclaimScope(session)!, session, undefined, () => open(id, true))) return;
    outcome.push(full ? `${id} refused` : `${id} open`);
    if (!full) grant.streamMoved();
  };
  for (let id = 1; id <= 8; id++) open(id, false);
  t.equal(outcome.length, 8, 'eight streams opened');
  outcome.length = 0;
  for (let id = 9; id <= 12; id++) open(id, false);
  t.same(outcome, [], 'the next four wait for the reserve');
  t.equal(session.revoked, 1);
  grants.returned(grant, 32);
  t.same(outcome, ['9 open', '10 open', '11 open', '12 open'], 'every waiting stream took a slot that came back');
  t.equal(session.granted, 32 + 28, 'then the engine got what was left of the share as a new reserve');
});
