import t, { Test } from 'tap';
import { endLookup, LOOKUP_THREADS, LookupOwner, MAX_USER_LOOKUPS, runLookup, takeLookup, USER_LOOKUP_THREADS } from '../../src/server/lookups';

/** A session of a user, with lookups that settle only when the test says so. */
function owner(user: { n: number; running: number }): LookupOwner & { started: string[]; settle(): void; pending: (() => void)[] } {
  const o = {
    lookups: { n: 0 },
    userLookups: user,
    started: [] as string[],
    pending: [] as (() => void)[],
    settle: () => o.pending.shift()!(),
  };
  return o;
}

function lookup(tt: Test, o: ReturnType<typeof owner>, name: string): void {
  tt.equal(takeLookup(o), undefined, `slot for ${name}`);
  runLookup(o, (done) => { o.started.push(name); o.pending.push(done); });
}

t.test("a user's lookups hold at most half the threads libuv gives lookups; the rest wait their turn",
  { skip: LOOKUP_THREADS !== 2 && 'written for the default pool (UV_THREADPOOL_SIZE unset)' }, async (t) => {
  t.equal(USER_LOOKUP_THREADS, 1, 'of the 2 lookups libuv runs at once with its default 4 threads, a user holds 1');
  const alice = owner({ n: 0, running: 0 });
  const bob = owner({ n: 0, running: 0 });
  for (const n of ['a1', 'a2', 'a3']) lookup(t, alice, n);
  t.same(alice.started, ['a1'], "alice's first runs, her others wait: she holds her one thread");
  lookup(t, bob, 'b1');
  t.same(bob.started, ['b1'], "bob's runs at once on the other");
  alice.settle();
  t.same(alice.started, ['a1', 'a2'], 'when hers settles, her next one starts');
  t.equal(alice.userLookups!.n, 2, 'and its slot is given back');
  bob.settle();
  alice.settle();
  alice.settle();
  t.same([alice.userLookups, bob.userLookups, alice.lookups, bob.lookups], [{ n: 0, running: 0 }, { n: 0, running: 0 }, { n: 0 }, { n: 0 }], 'all given back');
});

t.test('a user may hold half the process-wide lookup slots, a session 16', async (t) => {
  const user = { n: 0, running: 0 };
  const sessions = [owner(user), owner(user), owner(user)];
  const taken = sessions.map((s) => { let k = 0; while (!takeLookup(s)) k++; return k; });
  t.same(taken, [16, 16, 0], `two sessions of 16 fill the user's ${MAX_USER_LOOKUPS}`);
  t.match(takeLookup(sessions[2]!), /user at its share of name lookups \(32, half the server's\)/);
  const other = owner({ n: 0, running: 0 });
  t.equal(takeLookup(other), undefined, "another user's lookup still gets a slot");
  for (const s of [...sessions, other]) while (s.lookups.n > 0) endLookup(s);
});

t.test('a freed thread goes to the user served longest ago, not to the oldest waiting lookup',
  { skip: LOOKUP_THREADS !== 2 && 'written for the default pool (UV_THREADPOOL_SIZE unset)' }, async (t) => {
  const alice = owner({ n: 0, running: 0 });
  const carol = owner({ n: 0, running: 0 });
  const bob = owner({ n: 0, running: 0 });
  for (const n of ['a1', 'a2', 'a3']) lookup(t, alice, n);
  for (const n of ['c1', 'c2', 'c3']) lookup(t, carol, n);
  lookup(t, bob, 'b1');
  t.same([...alice.started, ...carol.started, ...bob.started], ['a1', 'c1'], 'alice and carol hold both threads; bob waits');
  alice.settle();
  t.same(bob.started, ['b1'], "when alice's settles, bob (never served) goes next, not alice's older a2");
  t.same(alice.started, ['a1'], 'alice waits her turn');
  carol.settle();
  t.same(alice.started, ['a1', 'a2'], "then carol's thread goes to alice, served longer ago than carol");
  for (const o of [bob, alice, alice, carol, carol]) o.settle();
  t.same([alice.userLookups, carol.userLookups, bob.userLookups], [{ n: 0, running: 0 }, { n: 0, running: 0 }, { n: 0, running: 0 }], 'all given back');
});
