import t from 'tap';
import { MAX_DATA, MAX_U32, StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import { ProtocolError } from '../../src/util/errors';

/** Seeded xorshift32, so a failure names an input that reproduces. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

const SEED = Number(process.env.TWS_PROPERTY_SEED ?? 20261124);
const N = 20_000;

function randomFrame(r: () => number): { bytes: Buffer; expect: codec.Frame } {
  const int = (n: number): number => Math.floor(r() * n);
  const stream = 1 + int(MAX_U32);
  const text = (max: number): string => Array.from({ length: int(max) }, () => String.fromCodePoint(r() < 0.8 ? 32 + int(95) : 0xa0 + int(0x2000))).join('');
  const bytes = (max: number): Buffer => Buffer.from(Array.from({ length: 1 + int(max) }, () => int(256)));
  switch (int(8)) {
    case 0: {
      const target = text(60);
      const kind = r() < 0.5 ? StreamKind.TCP : StreamKind.UDP;
      const window = int(MAX_U32 + 1);
      return { bytes: codec.encodeOpen(stream, window, kind, target), expect: { type: 'open', stream, window, kind, target } };
    }
    case 1: {
      const window = 65536 + int(MAX_U32 - 65536 + 1);
      return { bytes: codec.encodeOpenOk(stream, window), expect: { type: 'open-ok', stream, window } };
    }
    case 2: {
      const payload = bytes(r() < 0.05 ? MAX_DATA - 1 : 2000);
      return { bytes: codec.encodeData(stream, payload), expect: { type: 'data', stream, payload } };
    }
    case 3: {
      const increment = 1 + int(MAX_U32);
      return { bytes: codec.encodeWindow(stream, increment), expect: { type: 'window', stream, increment } };
    }
    case 4:
      return { bytes: codec.encodeFin(stream), expect: { type: 'fin', stream } };
    case 5: {
      const code = int(65536);
      const reason = text(40);
      return { bytes: codec.encodeReset(stream, code, reason), expect: { type: 'reset', stream, code, reason } };
    }
    case 6: {
      const payload = bytes(1500);
      return { bytes: codec.encodeDatagram(stream, payload), expect: { type: 'datagram', stream, payload } };
    }
    default: {
      const code = int(65536);
      const reason = text(40);
      return { bytes: codec.encodeGoaway(code, reason), expect: { type: 'goaway', stream: 0, code, reason } };
    }
  }
}

/** Decoding either returns a frame or throws ProtocolError; anything else is a bug. */
function decodeOrProtocolError(b: Buffer): codec.Frame | ProtocolError {
  try {
    return codec.decodeFrame(b);
  } catch (err) {
    if (err instanceof ProtocolError) return err;
    throw new Error(`decodeFrame threw ${(err as Error).name}: ${(err as Error).message} on ${b.subarray(0, 64).toString('hex')}`);
  }
}

t.test(`random frames round-trip (seed ${SEED}, ${N} frames)`, async (t) => {
  const r = rng(SEED);
  let bad = 0;
  for (let i = 0; i < N; i++) {
    const { bytes, expect } = randomFrame(r);
    const got = codec.decodeFrame(bytes);
    if (JSON.stringify(got) !== JSON.stringify(expect)) {
      bad++;
      if (bad < 5) t.fail(`frame ${i}: ${JSON.stringify(got).slice(0, 200)} != ${JSON.stringify(expect).slice(0, 200)}`);
    }
  }
  t.equal(bad, 0, 'every frame decodes to what was encoded');
});

t.test('every truncation and random mutations of valid frames: a frame or a ProtocolError, never a crash', async (t) => {
  const r = rng(SEED + 1);
  let errors = 0;
  let frames = 0;
  for (let i = 0; i < N / 4; i++) {
    const { bytes } = randomFrame(r);
    // Cut at every point of short frames, at random points of long ones.
    const cuts = bytes.length <= 64 ? Array.from({ length: bytes.length }, (_, k) => k) : Array.from({ length: 16 }, () => Math.floor(r() * bytes.length));
    for (const cut of cuts) {
      const res = decodeOrProtocolError(bytes.subarray(0, cut));
      if (res instanceof ProtocolError) errors++;
      else frames++;
    }
    const mutated = Buffer.from(bytes);
    for (let k = 0; k < 1 + Math.floor(r() * 4); k++) mutated[Math.floor(r() * mutated.length)] = Math.floor(r() * 256);
    const res = decodeOrProtocolError(mutated);
    if (res instanceof ProtocolError) errors++;
    else frames++;
  }
  t.ok(errors > 1000, `${errors} malformed inputs rejected with ProtocolError`);
  t.ok(frames > 100, `${frames} still well-formed (e.g. a shorter DATA)`);
});

t.test('malformed inputs the spec names are rejected', async (t) => {
  const r = rng(SEED + 2);
  let shortOk = 0;
  for (let i = 0; i < 2000; i++) {
    const stream = 1 + Math.floor(r() * 1000);
    if (decodeOrProtocolError(codec.encodeFin(stream).subarray(0, Math.floor(r() * 5))) instanceof ProtocolError) shortOk++;
  }
  t.equal(shortOk, 2000, 'anything shorter than the 5-byte header');
  const cases: [string, Buffer][] = [
    ['WINDOW of 0', Buffer.from('0400000001' + '00000000', 'hex')],
    ['OPEN_OK below 65536', Buffer.from('0200000001' + '0000ffff', 'hex')],
    ['DATA on stream 0', Buffer.from('030000000061', 'hex')],
    ['empty DATA', Buffer.from('0300000001', 'hex')],
    ['FIN with a body', Buffer.from('050000000100', 'hex')],
    ['GOAWAY on a stream', Buffer.from('08000000010009', 'hex')],
    ['RESET reason not UTF-8', Buffer.from('06000000010001ff', 'hex')],
    ['OPEN with kind 3', Buffer.from('01000000010001000003', 'hex')],
    ['DATA over the limit', Buffer.concat([Buffer.from('0300000001', 'hex'), Buffer.alloc(MAX_DATA + 1)])],
  ];
  for (const [name, b] of cases) t.ok(decodeOrProtocolError(b) instanceof ProtocolError, name);
});
