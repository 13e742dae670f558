import t from 'tap';
import type { WebSocket } from 'ws';
import { HEADER_LEN, StreamKind } from '../../src/protocol/constants';
import { Scheduler, SEND_HIGH_WATER } from '../../src/engine/js/scheduler';
import { JsStream } from '../../src/engine/js/stream';

/** A WebSocket stand-in: frames it was given, a send buffer that only empties when `flush()` runs the write callbacks. */
function fakeWs() {
  const frames: Buffer[] = [];
  const callbacks: (() => void)[] = [];
  const ws = {
    readyState: 1,
    bufferedAmount: 0,
    send(frame: Buffer, cb?: () => void) {
      frames.push(frame);
      ws.bufferedAmount += frame.length;
      if (cb) callbacks.push(cb);
    },
  };
  const flush = (): void => {
    ws.bufferedAmount = 0;
    for (const cb of callbacks.splice(0)) cb();
  };
  return { ws: ws as unknown as WebSocket, frames, flush };
}

const stream = (id: number): JsStream => new JsStream(id, 'target:1', StreamKind.TCP, 'open', { sendCredit: 0, recvWindow: 65536 });

/** Stream id and payload length of each DATA frame. */
const turns = (frames: Buffer[]): [number, number][] => frames.map((f) => [f.readUInt32BE(1), f.length - HEADER_LEN]);

t.test('two streams with data take turns of a whole frame (256 KiB), round-robin, and each is told when it has nothing left', async (t) => {
  const { ws, frames, flush } = fakeWs();
  const drained: number[] = [];
  const sched = new Scheduler(ws, { closed: () => false, sentData: () => undefined, drained: (s) => drained.push(s.id) });
  const a = stream(1);
  const b = stream(3);
  // Queued without credit: nothing goes out yet.
  sched.enqueue(a, Buffer.alloc(600_000));
  sched.enqueue(b, Buffer.alloc(300_000));
  t.equal(frames.length, 0, 'no credit, no DATA');
  a.sendCredit = b.sendCredit = 1 << 20;
  sched.markReady(a);
  sched.markReady(b);
  sched.pump();
  // Two whole frames fill the send buffer to its mark; each write lets the next turns go.
  while (frames.length < 5 && ws.bufferedAmount > 0) flush();
  const k = 256 * 1024;
  t.same(turns(frames), [[1, k], [3, k], [1, k], [3, 300_000 - k], [1, 600_000 - 2 * k]], 'alone again, a sends the rest in one frame');
  t.same(drained, [3, 1], 'each stream drained once, in the order it ran out');
  t.equal(a.sendCredit, (1 << 20) - 600_000, 'DATA consumed credit');
});

t.test('a stream alone sends up to a whole frame (256 KiB) per turn, and no more than its credit', async (t) => {
  const { ws, frames } = fakeWs();
  const sched = new Scheduler(ws, { closed: () => false, sentData: () => undefined, drained: () => undefined });
  const a = stream(1);
  a.sendCredit = 300_000;
  sched.enqueue(a, Buffer.alloc(200_000));
  sched.enqueue(a, Buffer.alloc(200_000));
  t.same(turns(frames), [[1, 200_000], [1, 100_000]], 'the second read waits for credit beyond 300000 bytes');
});

t.test('past the send high-water mark pumping waits until the buffered frame is written', async (t) => {
  const { ws, frames, flush } = fakeWs();
  const sent: number[] = [];
  const sched = new Scheduler(ws, { closed: () => false, sentData: (n) => sent.push(n), drained: () => undefined });
  const a = stream(1);
  a.sendCredit = 1 << 20;
  sched.enqueue(a, Buffer.alloc(1 << 20));
  const before = frames.length;
  t.ok(ws.bufferedAmount >= SEND_HIGH_WATER, 'the send buffer filled');
  t.ok(ws.bufferedAmount < SEND_HIGH_WATER + 2 * (256 * 1024 + HEADER_LEN), 'by at most a frame past the mark');
  t.ok(a.outQueued > 0, 'the rest waits');
  flush();
  t.ok(frames.length > before, 'written: pumping resumed');
  t.equal(sent.reduce((x, y) => x + y, 0) + a.outQueued, 1 << 20, 'every byte sent or still queued');
});

t.test('a closed session pumps nothing', async (t) => {
  const { ws, frames } = fakeWs();
  const sched = new Scheduler(ws, { closed: () => true, sentData: () => undefined, drained: () => undefined });
  const a = stream(1);
  a.sendCredit = 1 << 20;
  sched.enqueue(a, Buffer.alloc(1000));
  t.equal(frames.length, 0);
});
