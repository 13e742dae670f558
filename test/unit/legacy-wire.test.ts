import t from 'tap';
import { FLOOD_BYTES, PAUSE_BYTES, readsWebSocket, RESUME_BYTES, writeQueueVerdict } from '../../src/engine/legacy/flow';
import * as wire from '../../src/engine/legacy/wire';

// Messages the real tws-rust 0.2 client sent with password `secretpw` (captured off the wire).
const CAPTURED = [
  'AUTH ie0tpADdQaU/QTO7uxySVpxnxL97YUXVy6gZoO0zgKc=\nNOW 1796059008944\nTARGET 127.0.0.1:17003',
  'AUTH Xb5uxCERVHBN/sK1D9v4FniJ8PrY6HOAsCXucy+j8gM=\nNEW CONNECTION 5uDLQW',
  'AUTH FMUC+634CFpswPTSSBqM8oqsZZ8BWh7a/f7nBRQE7/Y=\nNEW UDP CONNECTION XVLCEE',
];

t.test('signs exactly as tws-rust does: the captured messages, byte for byte', async (t) => {
  t.equal(wire.authMessage('secretpw', wire.handshakeBody(1796059008944, '127.0.0.1:17003')), CAPTURED[0]);
  t.equal(wire.authMessage('secretpw', wire.newConnectionBody('5uDLQW', false)), CAPTURED[1]);
  t.equal(wire.authMessage('secretpw', wire.newConnectionBody('XVLCEE', true)), CAPTURED[2]);
});

t.test('parses and verifies the captured messages, and rejects them under another password', async (t) => {
  const parsed = CAPTURED.map((m) => wire.parseText(m));
  for (const p of parsed) {
    if (typeof p === 'string' || p.type !== 'auth') throw new Error(`not an AUTH: ${String(p)}`);
    t.ok(wire.macMatches('secretpw', p.body, p.mac), 'right password');
    t.notOk(wire.macMatches('secretpX', p.body, p.mac), 'wrong password');
    t.notOk(wire.macMatches('secretpw', `${p.body} `, p.mac), 'body changed');
  }
  const bodies = parsed.map((p) => wire.parseAuthBody((p as { body: string }).body));
  t.same(bodies, [
    { type: 'handshake', now: 1796059008944, target: '127.0.0.1:17003' },
    { type: 'new', id: '5uDLQW', udp: false },
    { type: 'new', id: 'XVLCEE', udp: true },
  ]);
});

t.test('a MAC of another length is refused before any compare', async (t) => {
  t.notOk(wire.macMatches('p', 'b', ''));
  t.notOk(wire.macMatches('p', 'b', 'A'.repeat(43)));
  t.match(wire.parseText('AUTH short\nNOW 1\nTARGET 1.2.3.4:5'), /malformed MAC/);
});

t.test('TARGET: IPv6 unbracketed on the wire, bracketed inside; ports and shapes checked', async (t) => {
  t.equal(wire.bracketTarget('::1:22'), '[::1]:22');
  t.equal(wire.bracketTarget('[::1]:22'), '[::1]:22');
  t.equal(wire.bracketTarget('10.0.0.1:5432'), '10.0.0.1:5432');
  t.equal(wire.unbracketTarget('[fe80::1]', 22), 'fe80::1:22');
  for (const bad of ['10.0.0.1', ':22', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:x', '10.0.0.1:123456']) t.equal(wire.bracketTarget(bad), undefined, bad);
  t.match(wire.parseAuthBody('NOW 1\nTARGET nope'), /bad TARGET/);
  t.match(wire.parseAuthBody(`NOW 1\nTARGET ${'a'.repeat(400)}:1`), /unknown authenticated message/, 'an overlong TARGET');
  t.match(wire.parseAuthBody('NOW 99999999999999999999\nTARGET 1.2.3.4:5'), /unknown authenticated message/, 'a NOW of 20 digits');
});

t.test('ids are exactly 6 characters of [A-Za-z0-9]', async (t) => {
  for (const ok of ['abcDEF', '012345', 'Zz9Aa0']) t.ok(wire.isId(ok), ok);
  for (const bad of ['abcde', 'abcdefg', 'abc-ef', 'abc ef', 'abcdé', '']) t.notOk(wire.isId(bad), JSON.stringify(bad));
  t.match(wire.parseText('CONNECTION abc\nef OK'), /unknown message/);
  t.match(wire.parseText('CONNECTION abcdefg OK'), /bad stream id/);
  t.match(wire.parseAuthBody('NEW CONNECTION ../../'), /bad stream id/);
  t.same(wire.parseText('CONNECTION abcdef PAUSE'), { type: 'connection', id: 'abcdef', state: 'PAUSE' });
  const id = wire.idFrom(Buffer.from([0, 61, 62, 255, 128, 7]));
  t.ok(wire.isId(id), `fresh id ${id}`);
});

t.test('Text messages are bounded, and what is quoted back is capped', async (t) => {
  const huge = wire.parseText(`CONNECTION ${'x'.repeat(10_000)}`);
  t.match(huge, /text message of 10011 characters/);
  const unknown = wire.parseText(`HELLO ${'y'.repeat(400)}`) as string;
  t.ok(unknown.length < 200, `quoted at most ~64 bytes: ${unknown.length}`);
  t.same(wire.parseText('hello'), { type: 'hello' });
});

t.test('Binary messages: P and U with a 6-character id, bounded', async (t) => {
  t.same(wire.parseBinary(Buffer.from('PabcdefHELLO')), { kind: 'P', id: 'abcdef', payload: Buffer.from('HELLO') });
  t.same(wire.parseBinary(Buffer.from('Uabcdef')), { kind: 'U', id: 'abcdef', payload: Buffer.alloc(0) });
  t.match(wire.parseBinary(Buffer.from('Pabc')), /too short/);
  t.match(wire.parseBinary(Buffer.from('Xabcdefdata')), /unknown binary message type 0x58/);
  t.match(wire.parseBinary(Buffer.from('Pab\ndefdata')), /bad stream id/);
  t.match(wire.parseBinary(Buffer.alloc(wire.MAX_BINARY + 1, 0x50)), /at most/);
  t.match(wire.parseBinary(Buffer.concat([Buffer.from('Uabcdef'), Buffer.alloc(wire.MAX_DATAGRAM + 1)])), /datagram of/);
  t.same(Buffer.concat([wire.dataHeader('P', 'abcdef'), Buffer.from('x')]), Buffer.from('Pabcdefx'));
});

t.test('flow: PAUSE at the high mark, RESUME at the low one, a flood closes the stream', async (t) => {
  t.equal(writeQueueVerdict(PAUSE_BYTES - 1, false), 'none');
  t.equal(writeQueueVerdict(PAUSE_BYTES, false), 'pause');
  t.equal(writeQueueVerdict(PAUSE_BYTES, true), 'none', 'PAUSE once');
  t.equal(writeQueueVerdict(RESUME_BYTES + 1, true), 'none');
  t.equal(writeQueueVerdict(RESUME_BYTES, true), 'resume');
  t.equal(writeQueueVerdict(FLOOD_BYTES + 1, true), 'flood');
  t.equal(writeQueueVerdict(FLOOD_BYTES + 1, false), 'flood');
  t.equal(readsWebSocket(100, 100, true), false, 'stops at the budget');
  t.equal(readsWebSocket(60, 100, false), false, 'stays stopped above half');
  t.equal(readsWebSocket(50, 100, false), true, 'reads again at half');
});
