import t from 'tap';
import { FD_SPARE, planFds, StreamSlots } from '../../src/server/fd-budget';
import { AllowList, parseAllowRules } from '../../src/policy/allow-list';

t.test('the fd plan keeps spares, pending connections and session fds aside, and gives one session at most half the streams', async (t) => {
  const p = planFds(256, 30, 1024);
  const free = 256 - 30 - FD_SPARE;
  t.equal(p.pending, 10, 'a sixteenth of what is free for connections before their upgrade (at least 8)');
  const left = free - 3 * p.pending;
  t.equal(p.sessions, Math.floor(left / 4), 'a quarter of the rest for sessions when --max-sessions is higher');
  t.equal(p.streams, left - 2 * p.sessions, 'each session reserved twice (its socket and the handoff duplicate)');
  t.equal(p.perSession, Math.ceil(p.streams / 4), 'a quarter of the streams per session');
  t.equal(p.perUser, Math.ceil(p.streams / 2), 'half per user');
  t.ok(p.streams + 2 * p.sessions + 3 * p.pending + 30 + FD_SPARE <= 256, 'never more than the limit');
  const big = planFds(1_048_576, 30, 1024);
  t.equal(big.sessions, 1024, '--max-sessions when the limit is generous');
  t.equal(big.pending, 1024, 'at most 1024 pending connections');
  t.same(planFds(50, 60, 10), { limit: 50, streams: 1, perSession: 1, perUser: 1, sessions: 1, pending: 8 }, 'never zero, even when the limit is already used up');
});

t.test('stream slots: per-session share and process limit, released per stream and per session', async (t) => {
  const slots = new StreamSlots<string>({ streams: 5, perSession: 3, perUser: 5 });
  t.equal(slots.take('a', 1), undefined);
  t.equal(slots.take('a', 3), undefined);
  t.equal(slots.take('a', 5), undefined);
  t.match(slots.take('a', 7), /session at its share of streams \(3/);
  t.match(slots.full('a'), /session at its share of streams \(3/, 'full() says the same without taking (reverse streams ask before they open)');
  t.equal(slots.full('b'), undefined);
  t.equal(slots.take('b', 1), undefined);
  t.equal(slots.take('b', 3), undefined);
  t.match(slots.take('c', 1), /server at its stream limit \(5/);
  slots.release('a', 1);
  t.equal(slots.take('c', 1), undefined, 'a released slot is free again');
  slots.releaseSession('b');
  t.equal(slots.inUse, 3, 'a closed session gives back all it held');
  slots.release('a', 99);
  t.equal(slots.inUse, 3, 'releasing a stream that held nothing changes nothing');
});

t.test('stream slots: the sessions of one user together hold at most the per-user share', async (t) => {
  const slots = new StreamSlots<string>({ streams: 10, perSession: 3, perUser: 4 });
  for (const id of [1, 3, 5]) t.equal(slots.take('s1', id, 'mallory'), undefined);
  t.equal(slots.take('s2', 1, 'mallory'), undefined);
  t.match(slots.take('s2', 3, 'mallory'), /user at its share of streams \(4/, 'a second session of the same user gets only the rest of the share');
  t.equal(slots.take('s3', 1, 'alice'), undefined, 'another user is not affected');
  slots.releaseSession('s1');
  t.equal(slots.take('s2', 3, 'mallory'), undefined, 'a closed session gives the user its slots back');
  t.equal(slots.inUse, 3);
  const big = new StreamSlots<string>({ streams: 100, perSession: 25, perUser: 50 });
  let held = 0;
  while (big.holdWaiting()) held++;
  t.equal(held, 25, 'waiting connections take a session\'s share at most');
  t.equal(big.take('a', 1), undefined, 'the rest stays for sessions');
});

t.test('an empty allow-list allows nothing, without even resolving the name', async (t) => {
  let resolved = 0;
  const resolve = async (): Promise<string[]> => { resolved++; return ['127.0.0.1']; };
  const empty = new AllowList([]);
  t.same(await empty.decide({ host: 'localhost', port: 22 }, resolve), { ok: false, why: 'the allow-list is empty: no target is allowed' });
  t.equal(resolved, 0);
  const list = new AllowList(parseAllowRules(['127.0.0.1:22'], 'test'));
  t.match(await list.decide({ host: 'localhost', port: 22 }, resolve), { ok: true, address: '127.0.0.1' });
  t.match(await list.decide({ host: 'localhost', port: 23 }, resolve), { ok: false });
});

t.test('an IPv6 rule never lets an IPv4 target through, nor the reverse', async (t) => {
  const v6 = new AllowList(parseAllowRules(['[::/0]:*'], 'test'));
  for (const host of ['127.0.0.1', '10.1.2.3', '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:1', '::FFFF:7F00:0001']) {
    t.match(await v6.decide({ host, port: 22 }), { ok: false }, `[::/0] does not allow ${host}`);
  }
  t.match(await v6.decide({ host: '::1', port: 22 }), { ok: true }, '[::/0] allows ::1');
  const v4 = new AllowList(parseAllowRules(['0.0.0.0/0:*'], 'test'));
  t.match(await v4.decide({ host: '::1', port: 22 }), { ok: false }, '0.0.0.0/0 does not allow ::1');
  t.match(await v4.decide({ host: '::ffff:10.0.0.1', port: 22 }), { ok: true, address: '10.0.0.1' }, 'an IPv4-mapped address is IPv4, and connected as such');
  t.match(await v4.decide({ host: '0:0:0:0:0:ffff:a00:1', port: 22 }), { ok: true, address: '10.0.0.1' }, 'in any spelling');
  const lo = new AllowList(parseAllowRules(['127.0.0.1:22'], 'test'));
  t.match(await lo.decide({ host: '::ffff:7f00:1', port: 22 }), { ok: true, address: '127.0.0.1' }, 'a v4 rule sees the mapped loopback');
  const ten = new AllowList(parseAllowRules(['10.0.0.0/8:*'], 'test'));
  t.match(await ten.decide({ host: '::ffff:7f00:1', port: 22 }), { ok: false }, 'and a mapped address outside a v4 rule is denied');
});

t.test('reclaimScope: the narrowest reserves that would admit one more stream, none when its own streams fill a share', async (t) => {
  const slots = new StreamSlots<string>({ streams: 160, perSession: 40, perUser: 80 });
  t.equal(slots.reserve('a', 8), 8, "a's engine holds 8 slots ahead");
  let id = 0;
  let refused = 0;
  for (const s of ['b', 'c', 'd']) for (let i = 0; i < 40; i++) if (slots.take(s, ++id) !== undefined) refused++;
  t.equal(refused, 0, 'b, c and d take 40 streams each');
  for (let i = 0; i < 32; i++) slots.take('e', ++id);
  t.equal(slots.limitHit('e'), 'server', 'the server is full');
  t.equal(slots.reclaimScope('a'), 'session', "a's own reserve is enough for a");
  t.equal(slots.reclaimScope('e'), 'server', "e needs a's reserve");
  t.equal(slots.reclaimScope('b'), undefined, 'b holds its whole share itself: taking reserves back would not admit it');
  slots.unreserve('a', 8);
  t.equal(slots.reclaimScope('e'), undefined, 'nothing to take back once it fits');

  const users = new StreamSlots<string>({ streams: 1600, perSession: 400, perUser: 50 });
  t.equal(users.reserve('u1', 20, 'u'), 20);
  for (let i = 0; i < 30; i++) users.take('u2', ++id, 'u');
  t.equal(users.limitHit('u2', 'u'), 'user', "u's share is full, 20 of it reserved by u1's engine");
  t.equal(users.reclaimScope('u2', 'u'), 'user', "u1's reserve is enough, no one else's is needed");
  t.equal(users.reclaimScope('v1', 'v'), undefined, 'another user is not at any limit');
  // The sums behind the answer follow every change of a reserve: bound to streams, returned, or its session gone.
  for (let i = 0; i < 19; i++) users.bindReserved('u1', 1000 + i);
  t.equal(users.reclaimScope('u2', 'u'), 'user', "one slot of u1's reserve is left: enough for one more");
  users.unreserve('u1', 1);
  users.take('u2', ++id, 'u');
  t.equal(users.limitHit('u2', 'u'), 'user', 'full again, with no reserve left');
  t.equal(users.reclaimScope('u2', 'u'), undefined, 'nothing to take back');
  t.equal(users.reserve('u3', 8, 'v'), 8, "v's engine holds 8");
  users.releaseSession('u3');
  t.equal(users.reclaimScope('u2', 'u'), undefined, "a reserve of a session gone is not counted for anyone");
});

t.test('a connection waiting at a reverse tunnel holds a slot of the server limit until released', async (t) => {
  const slots = new StreamSlots<string>({ streams: 3, perSession: 3, perUser: 3 });
  t.equal(slots.take('a', 1), undefined);
  t.equal(slots.holdWaiting(), true);
  t.equal(slots.holdWaiting(), true);
  t.equal(slots.holdWaiting(), false, 'none left: the next waiting connection is refused');
  t.match(slots.take('a', 3), /server at its stream limit/, 'and the waiting ones count against streams too');
  slots.releaseWaiting();
  t.equal(slots.take('a', 3), undefined, 'a released slot is free again');
  t.equal(slots.inUse, 3);
});
