/**
 * What a hostile peer (or local data it does not read) can make a server or
 * client hold, measured as the process's RSS: a message left unfinished in
 * tiny fragments, and data read ahead from many local sockets.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import { upgradeResponse } from '../../src/protocol/upgrade';
import { connect, echoServer, rssMiB, sha256, tcpServer, TcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { afterHead, clientFrame, parseFrames, rawWs } from '../helpers/raw-ws';
import { waitFor } from '../helpers/wait';

/** An unmasked (server's) WebSocket frame. */
function serverFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const n = payload.length;
  const len = n < 126 ? Buffer.from([n]) : Buffer.from([126, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, ...len]), payload]);
}

/** A frame as the given side sends it: a client's masked (key 0), a server's plain. */
const frame = (masked: boolean) => (opcode: number, payload: Buffer, fin = true): Buffer =>
  masked ? clientFrame(opcode, payload, fin, true) : serverFrame(opcode, payload, fin);

/**
 * The start of a binary message that never ends, and ~64 KiB units that
 * each hold one 1-byte continuation fragment and 500 pongs: every socket
 * read holds a fragment, which counts one byte against the message limits.
 */
function fragmentFlood(masked: boolean): { start: Buffer; unit: Buffer } {
  const f = frame(masked);
  const pong = f(0xa, Buffer.alloc(125));
  return {
    start: f(0x2, Buffer.from([0x0e, 0, 0, 0, 1, 0x78]), false),
    unit: Buffer.concat([f(0x0, Buffer.from([0x42]), false), ...Array<Buffer>(500).fill(pong)]),
  };
}

/** Writes `units` copies of `unit` as fast as the peer takes them. */
async function writeUnits(sock: Socket, unit: Buffer, units: number): Promise<void> {
  for (let i = 0; i < units && !sock.destroyed; i++) {
    if (!sock.write(unit)) await new Promise((r) => sock.once('drain', r));
  }
}

/** A pong carrying `marker` in what a peer sent (after the HTTP head if there is one). */
const hasPong = (frames: { opcode: number; payload: Buffer }[], marker: Buffer): boolean =>
  frames.some((f) => f.opcode === 0xa && f.payload.equals(marker));

/**
 * A server that answers any upgrade with a 101 selecting tws2 and hands the
 * socket to `upgraded`; what the client sends after the head is collected.
 */
async function hostileServer(upgraded: (s: Socket, received: () => Buffer) => void): Promise<TcpServer> {
  return tcpServer((s) => {
    let got = Buffer.alloc(0);
    let head = -1;
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (head >= 0 || (head = got.indexOf('\r\n\r\n')) < 0) return;
      const key = /^sec-websocket-key: *(\S+)/im.exec(got.subarray(0, head).toString('latin1'))![1]!;
      s.write(upgradeResponse(key));
      got = got.subarray(head + 4);
      upgraded(s, () => got);
    });
  });
}

/** How many ~64 KiB units of the fragment flood each test sends (~150 MiB). */
const UNITS = 2400;
/** RSS growth allowed while a peer holds a message open in 1-byte fragments (MiB; views of the reads would be ~150). */
const HELD_MIB = 40;

for (const engine of engines()) {
  t.test(`[${engine}] a DATA frame sent in fragments of every size, pings between them, arrives whole`, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--allow', echo.addr, '--no-udp']);
    t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
    const p = await rawWs(server.port, { after: clientFrame(0x2, codec.encodeOpen(1, 1 << 20, StreamKind.TCP, echo.addr)) });
    t.teardown(() => p.close());
    const tws = (): codec.Frame[] => afterHead(p.received()).frames.filter((f) => f.opcode === 0x2).map((f) => codec.decodeFrame(f.payload));
    await p.until(() => tws().some((f) => f.type === 'open-ok'));
    // 1, 2, 3, ... bytes, then larger pieces: past the doubling steps of any buffer that gathers them.
    const payload = randomBytes(200_000);
    const message = codec.encodeData(1, payload);
    const parts: Buffer[] = [];
    for (let at = 0, n = 1; at < message.length; at += n, n = n < 64 ? n + 1 : n * 2) {
      const piece = message.subarray(at, Math.min(at + n, message.length));
      parts.push(clientFrame(at === 0 ? 0x2 : 0x0, piece, at + n >= message.length), clientFrame(0x9, Buffer.from('p')));
    }
    p.socket.write(Buffer.concat([...parts, clientFrame(0x2, codec.encodeFin(1))]));
    await p.until(() => tws().some((f) => f.type === 'fin'), 20_000);
    const back = Buffer.concat(tws().flatMap((f) => (f.type === 'data' ? [f.payload] : [])));
    t.equal(sha256(back), sha256(payload), `${parts.length / 2} fragments reassembled and echoed intact`);
  });

  t.test(`[${engine}] a message left unfinished in 1-byte fragments, each in its own socket read, holds about its bytes (server)`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--no-udp', '-t', '60000']);
    t.teardown(() => server.stop('SIGKILL'));
    const p = await rawWs(server.port);
    t.teardown(() => p.close());
    await p.until((got) => afterHead(got).head.startsWith('HTTP/1.1 101'));
    const rss0 = rssMiB(server.proc.pid!);
    const { start, unit } = fragmentFlood(true);
    p.socket.write(start);
    await writeUnits(p.socket, unit, UNITS);
    // A ping between fragments: its pong says the server has parsed everything before it.
    const marker = Buffer.from('all read');
    p.socket.write(clientFrame(0x9, marker, true, true));
    await p.until((got) => hasPong(afterHead(got).frames, marker), 60_000);
    const grew = rssMiB(server.proc.pid!) - rss0;
    t.ok(grew < HELD_MIB, `server RSS grew ${grew.toFixed(0)} MiB for ${UNITS} fragments in ${(UNITS * unit.length / 2 ** 20).toFixed(0)} MiB of reads`);
  });

  t.test(`[${engine}] a message left unfinished in 1-byte fragments, each in its own socket read, holds about its bytes (client)`, async (t) => {
    let upgraded: { s: Socket; received: () => Buffer } | undefined;
    const hostile = await hostileServer((s, received) => { upgraded = { s, received }; });
    t.teardown(() => hostile.close());
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${hostile.port}/`, '-r', '127.0.0.1:9',
      '--engine', engine, '-c', '1', '--no-udp', '-t', '60000']);
    t.teardown(() => client.stop('SIGKILL'));
    t.ok(await waitFor(() => upgraded !== undefined), 'the client upgraded');
    const { s, received } = upgraded!;
    const rss0 = rssMiB(client.proc.pid!);
    const { start, unit } = fragmentFlood(false);
    s.write(start);
    await writeUnits(s, unit, UNITS);
    const marker = Buffer.from('all read');
    s.write(serverFrame(0x9, marker));
    t.ok(await waitFor(() => hasPong(parseFrames(received()).frames, marker), 60_000), 'the client answered a ping sent after every fragment');
    const grew = rssMiB(client.proc.pid!) - rss0;
    t.ok(grew < HELD_MIB, `client RSS grew ${grew.toFixed(0)} MiB for ${UNITS} fragments in ${(UNITS * unit.length / 2 ** 20).toFixed(0)} MiB of reads`);
  });
}

/** Streams to local sockets that each have more to send than any queue takes, while nothing can go out. */
const STREAMS = 1000;
/** What each local socket has to send at once (bytes). */
const TALK = 256 * 1024;
/** RSS growth allowed for them (MiB): their bookkeeping (~10-25 KiB each) and the queue; each read ahead would add ~128 KiB. */
const READ_AHEAD_MIB = 64;

/** Peak RSS growth of `pid` over `rss0` (MiB) seen within `ms`, stopping early past `limit`. */
async function peakGrowth(pid: number, rss0: number, limit: number, ms: number): Promise<number> {
  let peak = 0;
  await waitFor(() => (peak = Math.max(peak, rssMiB(pid) - rss0)) > limit, ms);
  return peak;
}

for (const engine of engines()) {
  t.test(`[${engine}] data read from many local sockets stays within the session's queue while the peer does not read (server)`, async (t) => {
    const talk = Buffer.alloc(TALK, 0x61);
    const target = await tcpServer((s) => s.write(talk));  // talks first
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--no-udp', '-t', '60000', '--allow', target.addr]);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    // The peer grants every stream 16 MiB of credit and never reads: DATA backs up in the server.
    const p = await rawWs(server.port, { read: false });
    t.teardown(() => p.close());
    const rss0 = rssMiB(server.proc.pid!);
    const opens = Array.from({ length: STREAMS }, (_, i) => clientFrame(0x2, codec.encodeOpen(1 + 2 * i, 16 << 20, StreamKind.TCP, target.addr), true, true));
    p.socket.write(Buffer.concat(opens));
    t.ok(await waitFor(() => target.sockets.size === STREAMS, 30_000), `the server connected all ${STREAMS} streams (${target.sockets.size})`);
    const grew = await peakGrowth(server.proc.pid!, rss0, READ_AHEAD_MIB, 3000);
    t.ok(grew < READ_AHEAD_MIB, `server RSS grew ${grew.toFixed(0)} MiB with ${STREAMS} targets each sending ${TALK / 1024} KiB`);
    t.notOk(p.socket.destroyed, 'the session is still up');
  });

  t.test(`[${engine}] data read from many local sockets stays within the session's queue while the peer does not read (client)`, async (t) => {
    // A server that upgrades and then never reads: OPENs get no answer, early data and DATA back up in the client.
    let upgraded: Socket | undefined;
    const hostile = await hostileServer((s) => { s.pause(); upgraded = s; });
    t.teardown(() => hostile.close());
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${hostile.port}/`, '-r', '127.0.0.1:9',
      '--engine', engine, '-c', '1', '--no-udp', '-t', '60000']);
    t.teardown(() => client.stop('SIGKILL'));
    t.ok(await waitFor(() => upgraded !== undefined), 'the client upgraded');
    const rss0 = rssMiB(client.proc.pid!);
    const talk = Buffer.alloc(TALK, 0x61);
    const apps: Socket[] = [];
    t.teardown(() => { for (const a of apps) a.destroy(); });
    let connected = 0;
    for (let i = 0; i < STREAMS; i++) {
      const a = connect(client.port, '127.0.0.1', () => { connected++; a.write(talk); });
      a.on('error', () => undefined);
      apps.push(a);
    }
    t.ok(await waitFor(() => connected === STREAMS, 30_000), `all ${STREAMS} local connections were accepted (${connected})`);
    // Past 200 open lines a session sums the rest up when its 10 s window ends.
    const opened = (): number => (client.logs().match(/ open from /g) ?? []).length
      + [...client.logs().matchAll(/… (\d+) more streams opened/g)].reduce((n, m) => n + Number(m[1]), 0);
    t.ok(await waitFor(() => opened() === STREAMS, 30_000), `the client opened a stream for each (${opened()})`);
    const grew = await peakGrowth(client.proc.pid!, rss0, READ_AHEAD_MIB, 3000);
    t.ok(grew < READ_AHEAD_MIB, `client RSS grew ${grew.toFixed(0)} MiB with ${STREAMS} local connections each sending ${TALK / 1024} KiB`);
  });
}
