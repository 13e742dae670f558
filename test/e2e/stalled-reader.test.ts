import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, roundTrip, rssMiB, sha256, sleep, tcpServer } from '../helpers/net';
import { engines, startTunnel } from '../helpers/procs';

for (const engine of engines()) {
  t.test(`[${engine}] one stalled reader neither stalls other streams on its session nor grows memory`, async (t) => {
    let pushed = 0;
    const chunk = Buffer.alloc(64 * 1024, 1);
    // First byte 'B': push bulk data forever; otherwise echo.
    const target = await tcpServer((s) => {
      s.once('data', (first: Buffer) => {
        if (first[0] === 0x42) {
          const push = (): void => {
            while (!s.destroyed && s.write(chunk)) pushed += chunk.length;
            if (!s.destroyed) { pushed += chunk.length; s.once('drain', push); }
          };
          push();
        } else {
          s.write(first);
          s.pipe(s);
        }
      });
    });
    const tun = await startTunnel({ engine, target: target.addr, clientArgs: ['-c', '1'] });
    t.teardown(async () => { await tun.stop(); await target.close(); });

    const stalled = connect({ port: tun.port, host: '127.0.0.1' });
    stalled.write('B');
    stalled.pause(); // never read
    await sleep(1500);
    const pushedAfterWarmup = pushed;
    const rssBefore = rssMiB(tun.client.proc.pid!) + rssMiB(tun.server.proc.pid!);
    // The target keeps trying to push for 2 more seconds; nothing may pile up in tws.
    await sleep(2000);
    const rssAfter = rssMiB(tun.client.proc.pid!) + rssMiB(tun.server.proc.pid!);
    t.ok(pushed < 48 * 1024 * 1024, `the bulk sender was held back: ${(pushed / 1048576).toFixed(1)} MiB accepted in total`);
    t.equal(pushed, pushedAfterWarmup, 'and stayed held back');
    t.ok(rssAfter - rssBefore < 16, `tws RSS grew ${(rssAfter - rssBefore).toFixed(1)} MiB during the stall`);

    // Another stream on the same (only) session still flows, repeatedly.
    for (let i = 0; i < 5; i++) {
      const data = Buffer.concat([Buffer.from('E'), randomBytes(2 * 1024 * 1024)]);
      const back = await roundTrip(tun.port, data, 20_000);
      t.equal(sha256(back), sha256(data), `echo ${i + 1} intact while the other stream is stalled`);
    }
    t.equal(pushed, pushedAfterWarmup, 'the stalled stream got no further while the others flowed');
    stalled.destroy();
  });
}
