import t from 'tap';
import { randomBytes } from 'node:crypto';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import { ProtocolError } from '../../src/util/errors';
import { loadNativeAddon } from '../../src/engine/native-addon';

/** Wraps `payload` into one WebSocket binary frame, masked like a client's. */
function wsFrame(payload: Buffer, opcode = 2): Buffer {
  const key = randomBytes(4);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, 0x80 | n])
    : n <= 0xffff ? Buffer.from([0x80 | opcode, 0x80 | 126, n >> 8, n & 0xff])
      : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  const masked = Buffer.from(payload);
  for (let i = 0; i < n; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([head, key, masked]);
}

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

t.test('the C++ parser and the TypeScript codec agree on every frame, valid or not', async (t) => {
  if (!addon) throw new Error(`native addon did not load: ${error}`);
  const nativeView = (msg: Buffer): string => {
    const r = addon.decodeStream(wsFrame(msg), true);
    if (r.closeCode !== 0) return 'error';
    if (r.events.length === 0) return 'ignored';
    const e = r.events[0]!;
    if (e.kind === 'data') return `data ${e.stream} ${e.body.toString('hex')}`;
    return `frame ${e.type} ${e.stream} ${e.body.toString('hex')}`;
  };
  const samples: Buffer[] = [
    codec.encodeOpen(1, 262144, StreamKind.TCP, '127.0.0.1:22'),
    codec.encodeOpen(3, 0, StreamKind.UDP, '[::1]:53'),
    codec.encodeOpenOk(1, 65536),
    codec.encodeData(5, randomBytes(1000)),
    codec.encodeData(5, randomBytes(262144)),
    codec.encodeWindow(5, 1),
    codec.encodeFin(5),
    codec.encodeReset(5, 2, 'connect failed'),
    codec.encodeGoaway(9, 'bye'),
    codec.encodeDatagram(7, randomBytes(512)),
  ];
  // Random mutations of valid frames, plus pure noise: type byte, lengths, ids.
  let seed = 99;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (let i = 0; i < 3000; i++) {
    const base = Buffer.from(samples[rnd(samples.length)]!.subarray(0, 600));
    const m = Buffer.from(base);
    const edits = 1 + rnd(3);
    for (let k = 0; k < edits && m.length > 0; k++) m[rnd(m.length)] = rnd(256);
    samples.push(rnd(4) === 0 ? m.subarray(0, rnd(m.length + 1)) : m);
  }
  let disagreements = 0;
  const examples: string[] = [];
  for (const msg of samples) {
    const a = tsView(msg);
    const b = nativeView(msg);
    if (a !== b) {
      disagreements++;
      if (examples.length < 5) examples.push(`${msg.subarray(0, 12).toString('hex')}: ts=${a.slice(0, 40)} native=${b.slice(0, 40)}`);
    }
  }
  t.equal(disagreements, 0, examples.join('\n') || `${samples.length} messages, same verdict and content`);
  t.ok(samples.filter((m) => tsView(m) === 'error').length > 100, 'the sample includes many malformed frames');
});

t.test('the native parser rejects a text message and an unmasked client frame like ws does', async (t) => {
  if (!addon) throw new Error(`native addon did not load: ${error}`);
  t.equal(addon.decodeStream(wsFrame(Buffer.from('hello'), 1), true).closeCode, 1002);
  const unmasked = Buffer.concat([Buffer.from([0x82, 5]), codec.encodeFin(1)]);
  t.equal(addon.decodeStream(unmasked, true).closeCode, 1002);
  t.equal(addon.decodeStream(unmasked, false).events.length, 1, 'a client accepts the same frame unmasked');
  t.equal(addon.decodeStream(wsFrame(Buffer.alloc(262161)), true).closeCode, 1009);
});
