import t from 'tap';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';
import { waitFor } from '../helpers/wait';

// Streams whose peer never grants more than the OPEN window hold data the
// server read for them; they must not stop a stream that has credit (the
// native engine reads a local socket only as far as its credit goes).
for (const engine of engines()) {
  t.test(`[${engine}] streams the peer gives no credit do not stop a stream that has credit`, async (t) => {
    const blob = Buffer.alloc(1 << 20, 0x61);
    // A target that sends without end, as fast as it may.
    const target = await tcpServer((c) => {
      const go = (): void => { while (c.writable && c.write(blob)); };
      c.on('drain', go);
      go();
    });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--no-udp']);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    const p = await rawPeer(server.port);
    const data = (stream: number): number =>
      p.frames.reduce((n, f: Frame) => n + (f.type === 'data' && f.stream === stream ? f.payload.length : 0), 0);
    const stuck = 16;
    for (let i = 0; i < stuck; i++) p.send(codec.encodeOpen(1 + 2 * i, 65536, StreamKind.TCP, target.addr));
    // Each of them gets its 64 KiB window's worth, and no more.
    await waitFor(() => Array.from({ length: stuck }, (_, i) => data(1 + 2 * i)).every((n) => n === 65536), 20_000);
    const late = 1 + 2 * stuck;
    p.send(codec.encodeOpen(late, 0x7fffffff, StreamKind.TCP, target.addr));
    await waitFor(() => data(late) >= 16 << 20, 20_000);
    t.ok(data(late) >= 16 << 20, `the stream with credit got ${data(late)} bytes`);
    t.same(Array.from({ length: stuck }, (_, i) => data(1 + 2 * i)), Array(stuck).fill(65536), 'the others stayed within their windows');
    p.ws.close();
  });
}
