import t from 'tap';
import { MAX_DATA, StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import { ProtocolError } from '../../src/util/errors';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('encodes OPEN byte for byte as the spec lays it out', async (t) => {
  const f = codec.encodeOpen(1, 0x40000, StreamKind.TCP, '127.0.0.1:22');
  t.same(f, Buffer.concat([hex('01 00000001 00040000 01'), Buffer.from('127.0.0.1:22')]));
});

t.test('every frame type survives an encode/decode round trip', async (t) => {
  t.same(codec.decodeFrame(codec.encodeOpen(7, 65536, StreamKind.UDP, '[::1]:53')),
    { type: 'open', stream: 7, window: 65536, kind: 2, target: '[::1]:53' });
  t.same(codec.decodeFrame(codec.encodeOpen(9, 0, StreamKind.TCP, '')), { type: 'open', stream: 9, window: 0, kind: 1, target: '' });
  t.same(codec.decodeFrame(codec.encodeOpenOk(3, 70000)), { type: 'open-ok', stream: 3, window: 70000 });
  const payload = Buffer.from('hello');
  const d = codec.decodeFrame(codec.encodeData(5, payload));
  t.equal(d.type, 'data');
  t.same((d as { payload: Buffer }).payload, payload);
  t.same(codec.decodeFrame(codec.encodeWindow(5, 123)), { type: 'window', stream: 5, increment: 123 });
  t.same(codec.decodeFrame(codec.encodeFin(5)), { type: 'fin', stream: 5 });
  t.same(codec.decodeFrame(codec.encodeReset(5, 2, 'connect failed')), { type: 'reset', stream: 5, code: 2, reason: 'connect failed' });
  t.same(codec.decodeFrame(codec.encodeGoaway(9, 'bye')), { type: 'goaway', stream: 0, code: 9, reason: 'bye' });
  const g = codec.decodeFrame(codec.encodeDatagram(11, Buffer.from([1, 2, 3])));
  t.same((g as { payload: Buffer }).payload, Buffer.from([1, 2, 3]));
});

t.test('the reverse-tunnel frames: layout, round trip, and what is malformed', async (t) => {
  const token = Buffer.alloc(16, 0xab);
  const listen = codec.encodeControl({ type: 'listen', stream: 0, request: 5, token, bind: '127.0.0.1:8080' });
  t.same(listen, Buffer.concat([hex('09 00000000 00000005'), token, Buffer.from('127.0.0.1:8080')]));
  t.same(codec.decodeFrame(listen), { type: 'listen', stream: 0, request: 5, token, bind: '127.0.0.1:8080' });
  t.same(codec.encodeControl({ type: 'listen-ok', stream: 0, request: 5, port: 8080 }), hex('0a 00000000 00000005 1f90'));
  t.same(codec.decodeFrame(hex('0a 00000000 00000005 1f90')), { type: 'listen-ok', stream: 0, request: 5, port: 8080 });
  t.same(codec.decodeFrame(codec.encodeControl({ type: 'listen-err', stream: 0, request: 5, code: 2, reason: 'in use' })),
    { type: 'listen-err', stream: 0, request: 5, code: 2, reason: 'in use' });
  const bad: [string, string][] = [
    ['09 00000001 00000005' + 'ab'.repeat(16) + '31', 'LISTEN on a stream'],
    ['09 00000000 00000005' + 'ab'.repeat(16), 'LISTEN without address'],
    ['09 00000000 00000005' + 'ab'.repeat(16) + 'ff', 'LISTEN address not UTF-8'],
    ['0a 00000000 00000005 0000', 'LISTEN_OK port 0'],
    ['0a 00000000 00000005 1f9000', 'LISTEN_OK too long'],
    ['0b 00000000 000000', 'LISTEN_ERR short'],
  ];
  for (const [h, what] of bad) t.throws(() => codec.decodeFrame(hex(h)), ProtocolError, what);
  t.throws(() => codec.decodeFrame(Buffer.concat([hex('09 00000000 00000005'), token, Buffer.alloc(260, 0x61)])), ProtocolError, 'long address');
});

t.test('frames of unknown types decode as unknown instead of failing', async (t) => {
  t.same(codec.decodeFrame(hex('0c 00000000 ffff')), { type: 'unknown', stream: 0, rawType: 12 });
  t.same(codec.decodeFrame(hex('00 00000003')), { type: 'unknown', stream: 3, rawType: 0 });
  t.same(codec.decodeFrame(hex('ff 00000001 00')), { type: 'unknown', stream: 1, rawType: 255 });
});

t.test('malformed frames of known types are protocol errors', async (t) => {
  const bad: [string, string][] = [
    ['0100000001', 'short header'],
    ['01 00000001 00010000', 'OPEN without kind'],
    ['01 00000001 00010000 03', 'OPEN with unknown kind'],
    ['01 00000000 00010000 01', 'OPEN on stream 0'],
    ['01 00000001 00010000 01 ff', 'OPEN target not UTF-8'],
    ['02 00000001 0001', 'short OPEN_OK'],
    ['02 00000001 0000ffff', 'OPEN_OK window below 65536'],
    ['03 00000001', 'empty DATA'],
    ['03 00000000 00', 'DATA on stream 0'],
    ['04 00000001 00000000', 'WINDOW of 0'],
    ['04 00000001 000001', 'short WINDOW'],
    ['05 00000001 00', 'FIN with body'],
    ['06 00000001 00', 'RESET short'],
    ['08 00000001 0001', 'GOAWAY on a stream'],
    ['08 00000000 00', 'GOAWAY short'],
  ];
  for (const [h, what] of bad) {
    t.throws(() => codec.decodeFrame(hex(h)), ProtocolError, what);
  }
  t.throws(() => codec.decodeFrame(Buffer.concat([hex('03 00000001'), Buffer.alloc(MAX_DATA + 1)])), ProtocolError, 'DATA too big');
  t.throws(() => codec.decodeFrame(Buffer.concat([hex('06 00000001 0002'), Buffer.alloc(121, 0x61)])), ProtocolError, 'long reason');
  t.doesNotThrow(() => codec.decodeFrame(Buffer.concat([hex('03 00000001'), Buffer.alloc(MAX_DATA)])), 'largest DATA is fine');
});

t.test('reasons are clamped to 120 bytes without splitting a character', async (t) => {
  const r = codec.clampReason('é'.repeat(100));
  t.ok(r.length <= 120);
  t.equal(r.length % 2, 0);
  t.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(r));
  const f = codec.decodeFrame(codec.encodeReset(1, 6, 'x'.repeat(500)));
  t.equal((f as { reason: string }).reason.length, 120);
});

t.test('random frames round-trip and random bytes never crash the decoder', async (t) => {
  let seed = 42;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    const stream = rnd(0x7fffffff) + 1;
    const payload = Buffer.alloc(rnd(300) + 1, rnd(256));
    const f = codec.decodeFrame(codec.encodeData(stream, payload)) as { stream: number; payload: Buffer };
    if (f.stream !== stream || !f.payload.equals(payload)) t.fail(`frame ${i} differs after a round trip`);
    const junk = Buffer.alloc(rnd(40));
    for (let j = 0; j < junk.length; j++) junk[j] = rnd(256);
    try {
      codec.decodeFrame(junk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) t.fail(`unexpected ${String(err)}`);
    }
  }
  t.pass('2000 random frames');
});
