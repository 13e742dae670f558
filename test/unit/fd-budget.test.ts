import t from 'tap';
import { FD_SPARE, planFds, StreamSlots } from '../../src/server/fd-budget';
import { AllowList, parseAllowRules } from '../../src/server/allow-list';

t.test('the fd plan keeps spares and session fds aside, and gives one session at most half the streams', async (t) => {
  const p = planFds(256, 30, 1024);
  const free = 256 - 30 - FD_SPARE;
  t.equal(p.sessions, Math.floor(free / 4), 'a quarter of what is free for sessions when --max-sessions is higher');
  t.equal(p.streams, free - 2 * p.sessions, 'each session reserved twice (its socket and the handoff duplicate)');
  t.equal(p.perSession, Math.ceil(p.streams / 2));
  t.ok(p.streams + 2 * p.sessions + 30 + FD_SPARE <= 256, 'never more than the limit');
  const big = planFds(1_048_576, 30, 1024);
  t.equal(big.sessions, 1024, '--max-sessions when the limit is generous');
  t.same(planFds(50, 60, 10), { limit: 50, streams: 1, perSession: 1, sessions: 1 }, 'never zero, even when the limit is already used up');
});

t.test('stream slots: per-session share and process limit, released per stream and per session', async (t) => {
  const slots = new StreamSlots<string>({ streams: 5, perSession: 3 });
  t.equal(slots.take('a', 1), undefined);
  t.equal(slots.take('a', 3), undefined);
  t.equal(slots.take('a', 5), undefined);
  t.match(slots.take('a', 7), /session at its share of streams \(3/);
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
