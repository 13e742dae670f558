import t from 'tap';
import { spawn } from 'node:child_process';
import { StreamKind } from '../../src/protocol/constants';
import { DEFAULT_SESSION_OPTIONS } from '../../src/engine/types';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';
import { needs } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const is = (type: string, stream?: number) => (f: Frame): boolean => f.type === type && (stream === undefined || f.stream === stream);

for (const engine of engines()) {
  t.test(`[${engine}] malformed input closes the session with 1002 and the server keeps serving`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(() => server.stop('SIGKILL'));
    const bad: [string, (p: Awaited<ReturnType<typeof rawPeer>>) => void, number][] = [
      ['text message', (p) => p.ws.send('hello'), 1002],
      ['short frame', (p) => p.send(hex('01 0000')), 1002],
      ['OPEN with bad kind', (p) => p.send(hex('01 00000001 00010000 09')), 1002],
      ['even stream id from a client', (p) => p.send(codec.encodeOpen(2, 65536, StreamKind.TCP, '127.0.0.1:1')), 1002],
      ['WINDOW of zero', (p) => p.send(hex('04 00000001 00000000')), 1002],
      ['GOAWAY on a stream', (p) => p.send(hex('08 00000003 0001')), 1002],
      ['message over the size limit', (p) => p.send(Buffer.alloc(262144 + 17)), 1009],
    ];
    for (const [what, act, code] of bad) {
      const p = await rawPeer(server.port);
      act(p);
      const closed = await p.closed;
      t.equal(closed.code, code, what);
    }
    t.equal(server.proc.exitCode, null, 'the server process is still running');
    const p = await rawPeer(server.port);
    p.send(hex('0f 00000000 deadbeef'));
    p.send(codec.encodeOpen(1, 65536, StreamKind.TCP, '127.0.0.1:1'));
    const r = await p.next(is('reset', 1));
    t.equal((r as { code: number }).code, 2, 'unknown frame types are ignored; the session still works');
    p.ws.close();
  });

  t.test(`[${engine}] stream semantics at the byte level: early data, credit, FIN, RESET codes`, async (t) => {
    let targetGot = Buffer.alloc(0);
    const target = await tcpServer((s) => {
      s.on('data', (c: Buffer) => { targetGot = Buffer.concat([targetGot, c]); });
      s.on('end', () => s.end('bye'));
    });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--connect-timeout', '500']);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    const p = await rawPeer(server.port);

    // Early data before OPEN_OK is delivered once connected; FIN → target sees EOF; reply + FIN come back.
    p.send(codec.encodeOpen(1, 65536, StreamKind.TCP, target.addr));
    p.send(codec.encodeData(1, Buffer.from('early ')));
    p.send(codec.encodeData(1, Buffer.from('data')));
    p.send(codec.encodeFin(1));
    const ok = await p.next(is('open-ok', 1)) as { window: number };
    t.ok(ok.window >= 65536, 'acceptor grants at least 65536');
    await p.next(is('fin', 1));
    const data = p.frames.filter(is('data', 1)).map((f) => (f as { payload: Buffer }).payload);
    t.equal(Buffer.concat(data).toString(), 'bye');
    t.equal(targetGot.toString(), 'early data');
    const fin = p.frames.findIndex(is('fin', 1));
    t.ok(p.frames.findIndex(is('data', 1)) < fin, 'FIN after the last DATA');

    // Refused target → RESET 2; bad target → RESET 2; empty target without a pinned one → RESET 1.
    const dead = await tcpServer(() => undefined);
    const deadAddr = dead.addr;
    await dead.close();
    p.send(codec.encodeOpen(3, 65536, StreamKind.TCP, deadAddr));
    t.equal((await p.next(is('reset', 3)) as { code: number }).code, 2);
    p.send(codec.encodeOpen(5, 65536, StreamKind.TCP, 'not an address'));
    t.equal((await p.next(is('reset', 5)) as { code: number }).code, 2);
    p.send(codec.encodeOpen(7, 65536, StreamKind.TCP, ''));
    t.equal((await p.next(is('reset', 7)) as { code: number }).code, 1);

    // Reusing a stream id is a protocol error.
    p.send(codec.encodeOpen(3, 65536, StreamKind.TCP, target.addr));
    t.equal((await p.closed).code, 1002);
  });

  t.test(`[${engine}] sending beyond the granted window is a protocol error`, { skip: needs('python3') }, async (t) => {
    // The limit on early data can only be enforced until the acceptor sends
    // OPEN_OK, so the target must not connect meanwhile: a loopback listener
    // that never accepts, its queue already full, makes the kernel drop our SYNs.
    const stuck = spawn('python3', ['-c', [
      'import socket, time',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
      'held = []',
      'for _ in range(3):',
      '    c = socket.socket(); c.setblocking(False); c.connect_ex(s.getsockname()); held.append(c)',
      'time.sleep(0.3)',
      'print(s.getsockname()[1], flush=True)',
      'time.sleep(120)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      stuck.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
      stuck.once('exit', (code) => reject(new Error(`python3 helper exited (${code})`)));
    });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(async () => { await server.stop('SIGKILL'); stuck.kill('SIGKILL'); });
    const p = await rawPeer(server.port);
    p.send(codec.encodeOpen(1, 65536, StreamKind.TCP, `127.0.0.1:${port}`));
    // 65536 bytes of early data are allowed; one more byte before OPEN_OK is not.
    p.send(codec.encodeData(1, Buffer.alloc(65536)));
    p.send(codec.encodeData(1, Buffer.alloc(1)));
    t.equal((await p.closed).code, 1002);
    t.notOk(p.frames.some(is('open-ok', 1)), 'the stream was still unanswered');
  });

  t.test(`[${engine}] the server honours our window: it stops at the credit we grant`, async (t) => {
    const big = Buffer.alloc(1024 * 1024, 7);
    const target = await tcpServer((s) => s.write(big));
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    const p = await rawPeer(server.port);
    p.send(codec.encodeOpen(1, 1000, StreamKind.TCP, target.addr));
    await p.next(is('open-ok', 1));
    const sum = (): number => p.frames.filter(is('data', 1)).reduce((n, f) => n + (f as { payload: Buffer }).payload.length, 0);
    // Wait for the credit to be used up, then for the answer to a ping sent
    // after it: a server that ignored the credit would have sent on at once.
    const settled = async (bytes: number): Promise<number> => {
      await waitFor(() => sum() >= bytes);
      await new Promise<void>((resolve) => { p.ws.once('pong', () => resolve()); p.ws.ping(); });
      return sum();
    };
    t.equal(await settled(1000), 1000, 'exactly the initial window');
    p.send(codec.encodeWindow(1, 5000));
    t.equal(await settled(6000), 6000, 'plus exactly the increment');
    p.send(codec.encodeReset(1, 6, 'done'));
    // DATA/WINDOW for the stream just reset are ignored, not errors
    p.send(codec.encodeWindow(1, 5000));
    p.send(codec.encodeOpen(3, 1000, StreamKind.TCP, target.addr));
    await p.next(is('open-ok', 3));
    p.ws.close();
  });

  t.test(`[${engine}] GOAWAY on SIGTERM: new OPENs are refused with RESET 9, open streams finish, exit 0`, async (t) => {
    const target = await tcpServer((s) => { s.on('data', (c: Buffer) => s.write(c)); s.on('end', () => s.end()); });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--drain-timeout', '5000']);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    const p = await rawPeer(server.port);
    p.send(codec.encodeOpen(1, 65536, StreamKind.TCP, target.addr));
    await p.next(is('open-ok', 1));
    const exited = server.stop('SIGTERM');
    const g = await p.next(is('goaway')) as { code: number };
    t.equal(g.code, 9);
    p.send(codec.encodeOpen(3, 65536, StreamKind.TCP, target.addr));
    t.equal((await p.next(is('reset', 3)) as { code: number }).code, 9);
    // the open stream still works while draining
    p.send(codec.encodeData(1, Buffer.from('still here')));
    await p.next(is('data', 1));
    p.send(codec.encodeFin(1));
    await p.next(is('fin', 1));
    const closed = await p.closed;
    t.equal(closed.code, 1001, 'closed with 1001 once drained');
    t.equal(await exited, 0, 'exit code 0');
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] the session budget: once 64 MiB of credit is out, new streams get the minimum window`, async (t) => {
    const hold = await tcpServer((s) => s.pause());  // accepts, never reads
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(async () => { await server.stop('SIGKILL'); await hold.close(); });
    const p = await rawPeer(server.port);
    const windows: number[] = [];
    for (let i = 0; i < 70; i++) {
      const id = 1 + 2 * i;
      p.send(codec.encodeOpen(id, 65536, StreamKind.TCP, hold.addr));
      windows.push((await p.next(is('open-ok', id)) as { window: number }).window);
    }
    t.equal(windows[0], DEFAULT_SESSION_OPTIONS.initialWindow, `the first stream gets the full initial window (${DEFAULT_SESSION_OPTIONS.initialWindow / 1048576} MiB)`);
    t.same(windows.slice(-5), [65536, 65536, 65536, 65536, 65536], 'past the budget: 64 KiB, the minimum');
    const total = windows.reduce((a, b) => a + b, 0);
    t.ok(total <= 64 * 1024 * 1024 + 70 * 65536, `credit granted in all: ${(total / 1048576).toFixed(1)} MiB`);
    p.ws.terminate();
  });
}
