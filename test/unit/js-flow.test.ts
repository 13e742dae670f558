import t from 'tap';
import { processCredit } from '../../src/engine/credit';
import { SessionFlow } from '../../src/engine/js/flow';
import { JsStream } from '../../src/engine/js/stream';
import { sessionOptions } from '../../src/engine/options';
import { StreamKind } from '../../src/protocol/constants';
import { ProtocolError } from '../../src/util/errors';
import { silentLogger } from '../../src/util/log';

const MIB = 1024 * 1024;
const opts = sessionOptions('server', { logger: silentLogger });

/** An open tcp stream whose peer may send `window` bytes. */
const openStream = (id: number, window: number): JsStream =>
  new JsStream(id, 'target:1', StreamKind.TCP, 'open', { sendCredit: 0, recvWindow: window });

t.test('credit granted on a stream counts process-wide until the stream ends', async (t) => {
  const flow = new SessionFlow(opts, silentLogger, () => 0);
  const before = processCredit();
  const s = openStream(1, MIB);
  flow.track(s);
  t.equal(processCredit(), before + MIB, 'the whole window is outstanding');
  flow.received(s, 1000);
  s.bytesIn += 1000;  // what the local side counts once the kernel has the bytes
  flow.written(s, 1000);
  t.equal(processCredit(), before + MIB - 1000, 'bytes written locally free their credit');
  flow.release(s);
  t.equal(processCredit(), before, 'an ended stream gives back what it held');
});

t.test('credit goes back with WINDOW once a quarter of the window was written, and not after FIN', async (t) => {
  const flow = new SessionFlow(opts, silentLogger, () => 0);
  const s = openStream(1, MIB);
  flow.track(s);
  flow.received(s, MIB);
  t.equal(flow.written(s, MIB / 4 - 1), 0, 'under a quarter: nothing yet');
  t.equal(flow.written(s, 1), MIB / 4, 'a quarter: all of it');
  t.equal(s.recvGranted, MIB + MIB / 4, 'and the grant grew by as much');
  s.finRecv = true;
  t.equal(flow.written(s, MIB / 2), 0, 'after FIN nothing is returned');
  flow.release(s);
});

t.test('a peer that sends past its credit is a protocol error; one nearly out of credit is starved', async (t) => {
  const flow = new SessionFlow(opts, silentLogger, () => 0);
  const s = openStream(1, 65536);
  flow.track(s);
  flow.received(s, 65536 - 8192);
  t.notOk(s.starved, 'an eighth left');
  flow.received(s, 1);
  t.ok(s.starved, 'less than an eighth left');
  t.throws(() => flow.received(s, 8192), ProtocolError, 'one byte over the window');
  flow.release(s);
});

t.test('a stream that was starved and kept up for a window of bytes gets its window doubled', async (t) => {
  const flow = new SessionFlow(opts, silentLogger, () => 0);
  const s = openStream(1, MIB);
  flow.track(s);
  s.epochStart = performance.now() - 100;  // the epoch has lasted longer than the shortest one
  flow.received(s, MIB);
  t.ok(s.starved);
  const increment = flow.written(s, MIB);
  t.equal(s.recvWindow, 2 * MIB, 'the window doubled');
  t.equal(increment, MIB + MIB, 'what was written and the growth go back at once');
  t.notOk(s.starved, 'a new epoch began');
  t.equal(s.epochBytes, 0);
  flow.release(s);
});
