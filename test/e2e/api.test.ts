import t from 'tap';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeCa, makeCert } from '../../bench/certs';
import { createClient, createServer } from '../../src/api';
import { createLogger } from '../../src/util/log';
import { scrape, value } from '../helpers/metrics';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { engines } from '../helpers/procs';
import { fileNeeds } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

/** What the CLI offers, through the API: TLS files, metrics, and reload (SIGHUP's job). */
fileNeeds(t, 'openssl');
const dir = t.testdir({});
const ca = makeCa(dir, 'api-ca');
const leaf = makeCert(dir, ca, 'api-leaf', ['localhost']);
const ca2 = makeCa(dir, 'api-ca2');
const leaf2 = makeCert(dir, ca2, 'api-leaf2', ['localhost']);

for (const engine of engines()) {
  t.test(`[${engine}] the API reads TLS files, serves metrics, and reload() swaps the certificate`, async (t) => {
    const lines: string[] = [];
    const logger = createLogger('info', (line) => { lines.push(line); });
    const echo = await echoServer();
    const certFile = join(dir, `${engine}.crt`);
    const keyFile = join(dir, `${engine}.key`);
    copyFileSync(leaf.cert, certFile);
    copyFileSync(leaf.key, keyFile);
    const s = await createServer({ listen: '127.0.0.1:0', passwd: 'pw', engine: engine as 'js' | 'native', tls: { certFile, keyFile }, metrics: '127.0.0.1:0', logger });
    const c = await createClient({
      listen: '127.0.0.1:0', server: `wss://localhost:${s.address.port}/`, remote: echo.addr, passwd: 'pw', engine: engine as 'js' | 'native',
      connections: 1, ca: ca.cert, metrics: '127.0.0.1:0', logger,
    });
    t.teardown(async () => { await c.shutdown(0); await s.shutdown(0); await echo.close(); });
    t.ok(s.metrics && c.metrics, 'both metrics endpoints listen');
    const data = randomBytes(200_000);
    t.equal(sha256(await roundTrip(c.address.port, data)), sha256(data), 'data intact over wss://');
    t.equal(value((await scrape(s.metrics!.port)).body, 'tws_sessions'), 1, 'server metrics: one session');
    t.equal(value((await scrape(c.metrics!.port)).body, 'tws_sessions'), 1, 'client metrics: one session');

    copyFileSync(leaf2.cert, certFile);
    copyFileSync(leaf2.key, keyFile);
    s.reload();
    t.match(lines.join(''), /reload: reloaded TLS certificate/);
    const fresh = await createClient({
      listen: '127.0.0.1:0', server: `wss://localhost:${s.address.port}/`, remote: echo.addr, passwd: 'pw', engine: engine as 'js' | 'native',
      connections: 1, ca: ca2.cert, logger,
    });
    t.teardown(() => fresh.shutdown(0));
    await waitFor(() => fresh.client.liveSessions.length === 1);
    t.equal(fresh.client.liveSessions.length, 1, 'a client trusting only the new CA connects after reload()');
    t.equal(sha256(await roundTrip(c.address.port, data)), sha256(data), 'the session from before the reload still carries data');
  });
}

t.test('a bad TLS file through the API is one config error naming it', async (t) => {
  await t.rejects(createServer({ listen: '127.0.0.1:0', passwd: 'pw', engine: 'js', tls: { certFile: join(dir, 'missing.crt'), keyFile: leaf.key } }),
    { code: 'TWS_ERR_CONFIG', message: /cannot read TLS certificate .*missing\.crt: ENOENT/ });
});
