import t from 'tap';
import { randomBytes } from 'node:crypto';
import { MAX_MESSAGE, StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import { ProtocolError } from '../../src/util/errors';
import { loadNativeAddon } from '../../src/engine/native-addon';
import { formatHostPort, parseHostPort } from '../../src/util/address';
import { IpAddress, ipText, parseIp } from '../../src/util/ip';

// ws's own parser, as the js engine runs it (server side: masked frames in).
// eslint-disable-next-line @typescript-eslint/no-var-requires
const Receiver = (require('ws') as { Receiver: new (o: object) => NodeJS.EventEmitter & { write(b: Buffer): void } }).Receiver;
/** The close code ws attaches to a parse error (under a symbol it does not export). */
const statusCode = (err: object): number | undefined => {
  const sym = Object.getOwnPropertySymbols(err).find((x) => x.description === 'status-code');
  return sym ? (err as Record<symbol, number>)[sym] : undefined;
};

/** Wraps `payload` into one WebSocket frame, masked like a client's. */
function wsFrame(payload: Buffer, opcode = 2, fin = true): Buffer {
  const key = randomBytes(4);
  const n = payload.length;
  const b0 = (fin ? 0x80 : 0) | opcode;
  const head = n < 126 ? Buffer.from([b0, 0x80 | n])
    : n <= 0xffff ? Buffer.from([b0, 0x80 | 126, n >> 8, n & 0xff])
      : Buffer.concat([Buffer.from([b0, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  const masked = Buffer.from(payload);
  for (let i = 0; i < n; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([head, key, masked]);
}

const closeBody = (code: number, reason: string | Buffer = ''): Buffer =>
  Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.isBuffer(reason) ? reason : Buffer.from(reason)]);

/** What the TypeScript codec makes of one message: a comparable summary or 'error'. */
function tsView(msg: Buffer): string {
  try {
    const f = codec.decodeFrame(msg);
    if (f.type === 'unknown') return 'ignored';
    if (f.type === 'data') return `data ${f.stream} ${f.payload.toString('hex')}`;
    return `frame ${msg[0]} ${f.stream} ${msg.subarray(5).toString('hex')}`;
  } catch (err) {
    if (err instanceof ProtocolError) return 'error';
    throw err;
  }
}

const { addon, error } = loadNativeAddon();

t.test('the C++ parser and the TypeScript codec agree on every frame, valid or not, at full size', async (t) => {
  if (!addon) throw new Error(`native addon did not load: ${error}`);
  const nativeView = (msg: Buffer): string => {
    const r = addon.testing.decodeStream(wsFrame(msg), true);
    if (r.closeCode !== 0) return 'error';
    if (r.events.length === 0) return 'ignored';
    const e = r.events[0]!;
    if (e.kind === 'data') return `data ${e.stream} ${e.body.toString('hex')}`;
    return `frame ${e.type} ${e.stream} ${e.body.toString('hex')}`;
  };
  const samples: Buffer[] = [
    codec.encodeOpen(1, 262144, StreamKind.TCP, '127.0.0.1:22'),
    codec.encodeOpen(3, 0, StreamKind.UDP, '[::1]:53'),
    codec.encodeOpen(5, 65536, StreamKind.TCP, `${'h'.repeat(65531 - 2)}:1`),  // body exactly 65536
    codec.encodeOpen(5, 65536, StreamKind.TCP, `${'h'.repeat(65532 - 2)}:1`),  // one byte over
    codec.encodeOpenOk(1, 65536),
    codec.encodeData(5, randomBytes(1000)),
    codec.encodeData(5, randomBytes(262144)),
    codec.encodeData(5, randomBytes(262145)),
    codec.encodeWindow(5, 1),
    codec.encodeFin(5),
    codec.encodeReset(5, 2, 'connect failed'),
    codec.encodeGoaway(9, 'bye'),
    codec.encodeDatagram(7, randomBytes(512)),
    codec.encodeDatagram(7, randomBytes(65536)),
    codec.encodeDatagram(7, randomBytes(65537)),
    codec.encodeDatagram(7, Buffer.alloc(0)),
    Buffer.concat([Buffer.from([0x0f, 0, 0, 0, 1]), randomBytes(100_000)]),  // unknown type, large: ignored
    codec.encodeControl({ type: 'listen', stream: 0, request: 1, token: randomBytes(16), bind: '127.0.0.1:8080' }),
    codec.encodeControl({ type: 'listen', stream: 0, request: 2, token: randomBytes(16), bind: 'h'.repeat(259) }),
    codec.encodeControl({ type: 'listen', stream: 0, request: 2, token: randomBytes(16), bind: 'h'.repeat(260) }),
    codec.encodeControl({ type: 'listen-ok', stream: 0, request: 3, port: 8080 }),
    codec.encodeControl({ type: 'listen-err', stream: 0, request: 4, code: 2, reason: 'address in use' }),
  ];
  // Random mutations of valid frames, plus pure noise: type byte, lengths, ids; whole frames, not cut short.
  let seed = 99;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const base = samples.slice();
  for (let i = 0; i < 3000; i++) {
    const m = Buffer.from(base[rnd(base.length)]!);
    const edits = 1 + rnd(3);
    for (let k = 0; k < edits && m.length > 0; k++) m[rnd(Math.min(m.length, 16))] = rnd(256);
    samples.push(rnd(4) === 0 ? m.subarray(0, rnd(m.length + 1)) : m);
  }
  let disagreements = 0;
  const examples: string[] = [];
  for (const msg of samples) {
    const a = tsView(msg);
    const b = nativeView(msg);
    if (a !== b) {
      disagreements++;
      if (examples.length < 5) examples.push(`${msg.subarray(0, 12).toString('hex')} (${msg.length} B): ts=${a.slice(0, 40)} native=${b.slice(0, 40)}`);
    }
  }
  t.equal(disagreements, 0, examples.join('\n') || `${samples.length} messages, same verdict and content`);
  t.ok(samples.filter((m) => tsView(m) === 'error').length > 100, 'the sample includes many malformed frames');
  t.ok(samples.some((m) => m.length > 262000 && tsView(m) !== 'error'), 'and full-size ones that are fine');
});

/**
 * Everything a receiving server makes of a byte stream at the WebSocket
 * level: the messages (through the TWS2 codec), pings, pongs and close
 * frames in order, and the close code it fails the connection with.
 */
async function wsView(input: Buffer): Promise<string[]> {
  const bytes = Buffer.from(input);  // ws unmasks in place
  const out: string[] = [];
  // With the limits a WebSocketServer gives its sockets by default (16,384 fragments).
  const r = new Receiver({ isServer: true, maxPayload: MAX_MESSAGE, allowSynchronousEvents: true, maxFragments: 16 * 1024, maxBufferedChunks: 256 * 1024 });
  let failed = false;
  r.on('message', (data: Buffer, isBinary: boolean) => {
    if (failed) return;
    if (!isBinary) {
      out.push('fail text');  // the js engine refuses text messages (1002)
      failed = true;
      return;
    }
    const v = tsView(data);
    if (v === 'error') {
      out.push('fail 1002');
      failed = true;
    } else if (v !== 'ignored') {
      out.push(v);
    }
  });
  r.on('ping', (d: Buffer) => { if (!failed) out.push(`ping ${d.toString('hex')}`); });
  r.on('pong', (d: Buffer) => { if (!failed) out.push(`pong ${d.toString('hex')}`); });
  r.on('conclude', (code: number, reason: Buffer) => { if (!failed) out.push(`close ${code === 1005 ? 'empty' : `${code} ${reason.toString('hex')}`}`); failed = true; });
  r.on('error', (err: Error & { code?: string }) => {
    if (failed) return;
    failed = true;
    // ws checks a text message's UTF-8 before the js engine sees it is text (and refuses it): both refuse text.
    const text = err.code === 'WS_ERR_INVALID_UTF8' && (r as unknown as { _opcode: number })._opcode === 1;
    out.push(text ? 'fail text' : `fail ${statusCode(err)}`);
  });
  r.write(bytes);
  // A Writable reports errors on a later tick.
  await new Promise((resolve) => setImmediate(resolve));
  return out;
}

/** The opcodes of the frames in a masked byte stream (as far as the lengths are sane). */
function frameOpcodes(buf: Buffer): number[] {
  const ops: number[] = [];
  let at = 0;
  while (at + 2 <= buf.length) {
    ops.push(buf[at]! & 0x0f);
    const len7 = buf[at + 1]! & 0x7f;
    let n = len7;
    let h = 2;
    if (len7 === 126) { if (at + 4 > buf.length) break; n = buf.readUInt16BE(at + 2); h = 4; }
    if (len7 === 127) { if (at + 10 > buf.length) break; n = Number(buf.readBigUInt64BE(at + 2)); h = 10; }
    at += h + 4 + n;
  }
  return ops;
}

t.test('the native engine and ws + the TypeScript codec agree on WebSocket streams: control frames, close frames, fragments, sizes', async (t) => {
  if (!addon) throw new Error(`native addon did not load: ${error}`);
  const nativeView = (bytes: Buffer): string[] => {
    const r = addon.testing.decodeStream(bytes, true);
    const out = r.events.map((e) => {
      if (e.kind === 'data') return `data ${e.stream} ${e.body.toString('hex')}`;
      if (e.kind === 'frame') return `frame ${e.type} ${e.stream} ${e.body.toString('hex')}`;
      if (e.type === 0x9) return `ping ${e.body.toString('hex')}`;
      if (e.type === 0xa) return `pong ${e.body.toString('hex')}`;
      return `close ${e.body.length === 0 ? 'empty' : `${e.body.readUInt16BE(0)} ${e.body.subarray(2).toString('hex')}`}`;
    });
    // The native session stops at a close frame: what follows it is never read.
    const close = out.findIndex((x) => x.startsWith('close'));
    if (close >= 0) return out.slice(0, close + 1);
    if (r.closeCode !== 0) out.push(r.reason === 'text message' ? 'fail text' : `fail ${r.closeCode}`);
    return out;
  };
  const fin = codec.encodeFin(3);
  const streams: Buffer[] = [
    wsFrame(Buffer.alloc(0), 0x9),
    wsFrame(randomBytes(125), 0x9),
    wsFrame(randomBytes(126), 0x9),  // control frame too long
    wsFrame(randomBytes(7), 0xa),
    wsFrame(Buffer.from('x'), 0x9, false),  // fragmented control frame
    wsFrame(Buffer.alloc(0), 0x8),
    wsFrame(Buffer.from([3]), 0x8),
    ...[1000, 1001, 1004, 1005, 1006, 1011, 1014, 1015, 1016, 2999, 3000, 4999, 5000, 999, 0].map((c) => wsFrame(closeBody(c, 'why'), 0x8)),
    wsFrame(closeBody(1000, Buffer.from([0xc0, 0xaf])), 0x8),
    wsFrame(closeBody(1000, 'r'.repeat(123)), 0x8),
    Buffer.concat([wsFrame(fin), wsFrame(Buffer.from('ping'), 0x9), wsFrame(closeBody(1000, 'bye'), 0x8), wsFrame(fin)]),
    // A message in three fragments with a ping between them.
    Buffer.concat([wsFrame(codec.encodeData(5, randomBytes(10)).subarray(0, 7), 2, false), wsFrame(randomBytes(3), 0x9),
      wsFrame(randomBytes(100_000), 0, false), wsFrame(randomBytes(5), 0, true)]),
    Buffer.concat([wsFrame(randomBytes(4), 0, true)]),  // a continuation without a message
    Buffer.concat([wsFrame(fin.subarray(0, 3), 2, false), wsFrame(fin, 2, true)]),  // a new message inside a fragmented one
    wsFrame(codec.encodeData(1, randomBytes(262144))),
    wsFrame(Buffer.alloc(MAX_MESSAGE + 1)),  // over the message limit: 1009
    Buffer.concat([wsFrame(codec.encodeData(1, randomBytes(200_000)), 2, false), wsFrame(randomBytes(62_170), 0, true)]),  // 1009 across fragments
    wsFrame(Buffer.from('text'), 0x1),
    wsFrame(Buffer.from([0xff, 0xfe]), 0x1),
    wsFrame(codec.encodeDatagram(7, randomBytes(65537))),
    // A length in more bytes than it needs (accepted by both), and a 64-bit length with the top bit set (1009).
    (() => { const f = wsFrame(fin); return Buffer.concat([Buffer.from([f[0]!, 0x80 | 126, 0, 5]), f.subarray(2)]); })(),
    Buffer.concat([Buffer.from([0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0]), randomBytes(4)]),
    // A message in 16,385 fragments (1008) and in 16,384 (fine).
    Buffer.concat([wsFrame(fin.subarray(0, 1), 2, false), ...Array.from({ length: 16383 }, () => wsFrame(Buffer.alloc(0), 0, false)),
      wsFrame(fin.subarray(1), 0, true)]),
    Buffer.concat([wsFrame(fin.subarray(0, 1), 2, false), ...Array.from({ length: 16382 }, () => wsFrame(Buffer.alloc(0), 0, false)),
      wsFrame(fin.subarray(1), 0, true)]),
  ];
  // Mutations: flip header bits (opcode, FIN, RSV, lengths) and payload bytes of small multi-frame streams.
  let seed = 7;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const small = [fin, codec.encodeWindow(3, 5), codec.encodeReset(3, 1, 'no'), codec.encodeOpen(1, 65536, StreamKind.TCP, 'a:1')];
  for (let i = 0; i < 1500; i++) {
    const parts: Buffer[] = [];
    for (let k = 0; k < 1 + rnd(4); k++) {
      const kind = rnd(5);
      parts.push(kind === 0 ? wsFrame(randomBytes(rnd(130)), 0x9) : kind === 1 ? wsFrame(closeBody(rnd(6000), rnd(2) ? 'x' : Buffer.from([0xc3])), 0x8)
        : wsFrame(small[rnd(small.length)]!, 2, rnd(5) !== 0));
    }
    const m = Buffer.concat(parts);
    if (rnd(2)) {
      const i = rnd(Math.min(m.length, 3));
      m[i] = (m[i] ?? 0) ^ (1 << rnd(8));
    }
    // Text is refused by both, but ws only at the message's end (after its UTF-8 check): the cases above cover it.
    if (!frameOpcodes(m).includes(1)) streams.push(m);
  }
  let disagreements = 0;
  const examples: string[] = [];
  for (const bytes of streams) {
    const a = (await wsView(bytes)).join(' | ');
    const b = nativeView(bytes).join(' | ');
    if (a !== b) {
      disagreements++;
      if (examples.length < 5) examples.push(`${bytes.subarray(0, 16).toString('hex')} (${bytes.length} B)\n  ws:     ${a.slice(0, 160)}\n  native: ${b.slice(0, 160)}`);
    }
  }
  t.equal(disagreements, 0, examples.join('\n') || `${streams.length} byte streams, same events and the same close code`);
  let failing = 0;
  for (const s of streams) if (/fail|close/.test((await wsView(s)).join())) failing++;
  t.ok(failing > 200, `many of them fail or close the connection (${failing})`);
});

t.test('the native parser rejects a text message and an unmasked client frame like ws does', async (t) => {
  if (!addon) throw new Error(`native addon did not load: ${error}`);
  t.equal(addon.testing.decodeStream(wsFrame(Buffer.from('hello'), 1), true).closeCode, 1002);
  const unmasked = Buffer.concat([Buffer.from([0x82, 5]), codec.encodeFin(1)]);
  t.equal(addon.testing.decodeStream(unmasked, true).closeCode, 1002);
  t.equal(addon.testing.decodeStream(unmasked, false).events.length, 1, 'a client accepts the same frame unmasked');
  t.equal(addon.testing.decodeStream(wsFrame(Buffer.alloc(262161)), true).closeCode, 1009);
});

// Answer ahead (native/core/ahead_target.h): a server session dials an OPEN's
// target itself only when JavaScript, without an allow-list, would connect
// exactly there (connect-target.ts: parseHostPort, then parseIp's canonical
// text). Every spelling a peer can send is tried on both: where the engine
// dials, JavaScript must name the same address and port, spelled as sent.
t.test('answer ahead dials a target only where JavaScript would connect, spelled as it would', async (t) => {
  if (!addon) throw new Error(`native addon did not load: ${error}`);
  let seed = 0x2545f491;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
  const ports = ['80', '1', '65535', '0', '080', '+80', '-1', ' 80', '80 ', '65536', '99999', '', '8\u00000', '0x50', '١'];
  const v4part = ['0', '1', '9', '10', '99', '127', '255', '256', '00', '01', '007', '0x7f', '0X1', '1e2', '', ' 1', '1 ', '+1', '4294967295'];
  const v4 = (): string => rnd(2) === 0 ? Array.from({ length: 4 }, () => String(pick([0, 1, 127, 255, rnd(256)]))).join('.') : Array.from({ length: pick([1, 2, 3, 4, 4, 4, 4, 5]) }, () => pick(v4part)).join('.') + pick(['', '', '', '.', '\u0000', ' ']);
  const group = (): string => {
    const g = pick([0, 0, 1, 0xffff, 0xfe80, 0x2001, 0xdb8, 0x64, rnd(0x10000)]).toString(16);
    return rnd(8) === 0 ? pick([g.toUpperCase(), g.padStart(4, '0'), `0${g}`]) : g;
  };
  const v6 = (): string => {
    const gs = Array.from({ length: 8 }, group);
    const a = rnd(9);
    const b = a + rnd(9 - a);
    let s = pick([gs.join(':'), `${gs.slice(0, a).join(':')}::${gs.slice(b).join(':')}`, `${gs.slice(0, a).join(':')}::${gs.slice(b).join(':')}`]);
    if (rnd(10) === 0) s = pick(['::ffff:', '::', '::ffff:0:', '64:ff9b::', '1::', '::FFFF:']) + pick(['127.0.0.1', '1.2.3.4', '0.0.0.0', '01.2.3.4', '1.2.3']);
    if (rnd(8) === 0) s = pick(['::', '::1', '0::1', '::0:1', '::2', '::ffff:7f00:1', '::ffff:0:0', '1::', 'fe80::1']);
    if (rnd(10) === 0) s += pick(['%lo', '%eth0', '%', '%1']);
    return s;
  };
  const targets: string[] = ['127.0.0.1:80', '[::1]:22', '[2001:db8::1]:443', '0.0.0.0:80', '[::]:80', ''];
  for (let i = 0; i < 60_000; i++) {
    const host = rnd(2) === 0 ? v4() : v6();
    const bracket = host.includes(':') ? rnd(8) !== 0 : rnd(8) === 0;
    targets.push(`${bracket ? `[${host}]` : host}${rnd(10) === 0 ? pick(['', '::']) : ':'}${rnd(2) === 0 ? String(1 + rnd(65535)) : pick(ports)}${rnd(20) === 0 ? pick(['\u0000', ' ', 'x', ']']) : ''}`);
  }
  let taken = 0;
  let canonical = 0;
  const wrong: string[] = [];
  const missed: string[] = [];
  for (const target of targets) {
    const ahead = addon.testing.aheadTarget(target);
    // What connect-target.ts does with it, without an allow-list.
    const hp = parseHostPort(target);
    const ip = typeof hp === 'object' ? parseIp(hp.host) : undefined;
    const js = typeof hp === 'object' && typeof ip === 'object' && ip.zone === undefined ? `${ipText(ip)} ${hp.port}` : null;
    const asSent = js !== null && typeof hp === 'object' && formatHostPort(ipText(ip as IpAddress), hp.port) === target;
    if (asSent) canonical++;
    if (ahead === null) {
      if (asSent && missed.length < 5) missed.push(JSON.stringify(target));
      continue;
    }
    taken++;
    if ((ahead !== js || !asSent) && wrong.length < 10) wrong.push(`${JSON.stringify(target)}: engine ${ahead}, JavaScript ${js ?? 'refuses or resolves it'}`);
  }
  t.same(wrong, [], `the engine dials ${taken} of ${targets.length} targets, each where JavaScript would`);
  t.same(missed, [], `and every one of the ${canonical} already in JavaScript's own spelling`);
  t.ok(taken > 1000, 'enough of them are taken to mean something');
});
