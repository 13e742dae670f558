import t from 'tap';
import { MAX_U32 } from '../../src/protocol/constants';
import { StreamIds } from '../../src/engine/stream-log';
import { STREAM_IDS_RESERVE } from '../../src/engine/types';

t.test('blocks of ids keep the parity, never repeat, and stop where the ids run low', (t) => {
  const ids = new StreamIds('client');
  const a = ids.takeBlock(32);
  t.same(a, { first: 1, count: 32 });
  t.equal(ids.take(), 65, 'the next single id follows the block');
  t.same(ids.takeBlock(3), { first: 67, count: 3 });
  const server = new StreamIds('server');
  t.equal(server.takeBlock(4).first, 2, 'a server starts at 2');
  t.end();
});

t.test('near the end, a block ends before `low` and the next single id drains', (t) => {
  // 10 ids can still be taken before low; the 11th makes it low.
  const first = MAX_U32 - 2 * (STREAM_IDS_RESERVE + 10);
  const ids = new StreamIds('client', first);
  t.equal(ids.beforeLow, 10);
  t.same(ids.takeBlock(32), { first, count: 10 }, 'cut at the low mark');
  t.notOk(ids.low, 'not low yet');
  t.equal(ids.beforeLow, 0);
  t.same(ids.takeBlock(32), { first: first + 20, count: 1 }, 'then one at a time');
  t.ok(ids.low, 'which makes it low');
  t.end();
});

t.test('the last ids: one at a time (the session drains by then), never past 2^32 - 1, then none is left', (t) => {
  const ids = new StreamIds('client', MAX_U32 - 4);
  t.same(ids.takeBlock(32), { first: MAX_U32 - 4, count: 1 });
  t.same(ids.takeBlock(32), { first: MAX_U32 - 2, count: 1 });
  t.same(ids.takeBlock(32), { first: MAX_U32, count: 1 });
  t.ok(ids.exhausted);
  t.same(ids.takeBlock(32), { first: 0, count: 0 });
  t.equal(ids.take(), 0);
  t.end();
});
