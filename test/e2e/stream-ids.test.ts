import t from 'tap';
import { randomBytes } from 'node:crypto';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { engines, startTunnel } from '../helpers/procs';

// Ids are never reused within a session; the counter starts 2^17 ids short
// of the 2^32 limit plus 20, so the 11th stream leaves fewer than the reserve.
const FIRST = 2 ** 32 - 1 - 2 * 131072 - 20;

for (const engine of engines()) {
  t.test(`[${engine}] a session running out of stream ids drains itself and its slot reconnects, losing nothing`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-c', '1'], env: { TWS_TEST_FIRST_STREAM_ID: String(FIRST) } });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const data = randomBytes(100_000);
    for (let i = 0; i < 30; i++) t.equal(sha256(await roundTrip(tun.port, data)), sha256(data), `connection ${i + 1} intact`);
    await tun.client.waitLog(/stream ids running out; draining this session for a new one/);
    const ups = tun.client.logs().match(/ up → /g) ?? [];
    t.ok(ups.length >= 2, `the slot brought up a new session (${ups.length} sessions)`);
    await tun.server.waitLog(/peer is going away/);
    await tun.client.waitLog(/session#1 down \(100[01]/);
    const ids = [...tun.client.logs().matchAll(/session#(\d+) stream#(\d+) open/g)].map((m) => `${m[1]}/${m[2]}`);
    t.equal(new Set(ids).size, ids.length, 'no stream id was used twice in a session');
    t.ok(ids.every((id) => Number(id.split('/')[1]) <= 2 ** 32 - 1), 'every id fits in 32 bits');
  });
}
