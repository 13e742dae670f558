// The programmatic API: a server and a client in one process, tunnelling to
// a tiny echo service. Run from a checkout with `node example/api.js`
// (after `npm install`); in your own code, require('tws-native').
'use strict';
const net = require('node:net');
let tws;
try {
  tws = require('tws-native');
} catch {
  tws = require('..');
}
const { createServer, createClient, createLogger } = tws;

async function main() {
  const echo = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
  await new Promise((r) => echo.once('listening', r));
  const passwd = 'use a long random secret';
  const logger = createLogger('info');

  const { server, address: sa } = await createServer({ listen: '127.0.0.1:0', passwd, logger });
  const { client, address: ca } = await createClient({
    listen: '127.0.0.1:0',
    server: `ws://127.0.0.1:${sa.port}/`,
    remote: `127.0.0.1:${echo.address().port}`,
    passwd,
    connections: 1,
    logger,
  });

  const sock = net.connect(ca.port, '127.0.0.1');
  sock.end('hello through the tunnel\n');
  sock.on('data', (d) => process.stdout.write(`echoed: ${d}`));
  await new Promise((r) => sock.on('close', r));

  await client.shutdown(1000);
  await server.shutdown(1000);
  echo.close();
}

main().catch((err) => {
  console.error(err.message);
  process.exitCode = 1;
});
