/** `--metrics ADDR`: Prometheus text at GET /metrics (HEAD: its headers alone), 404 for anything else. */
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort, HostPort } from '../util/address';
import { TwsError } from '../util/errors';
import type { Logger } from '../util/log';
import type { Metrics } from './metrics';

/**
 * Connections the endpoint holds at once: a scraper needs one or two, and
 * whoever can reach the port must not be able to hold the process's fds
 * (the fd plan keeps these within FD_SPARE). More are closed as they come.
 */
export const METRICS_CONNECTIONS = 16;
/** A request's headers must be in within this, and an idle keep-alive connection goes after KEEP_ALIVE_MS. */
export const METRICS_REQUEST_MS = 5_000;
const KEEP_ALIVE_MS = 2_000;

export function serveMetrics(addr: HostPort, metrics: Metrics, log: Logger): Promise<Server> {
  // Timeouts are checked every second (Node's default is every 30 s, which would triple the header timeout).
  const http = createServer({ connectionsCheckingInterval: 1000, keepAliveTimeout: KEEP_ALIVE_MS }, (req, res) => {
    // Node's ServerResponse sends no body for HEAD: the same code answers both.
    if ((req.method === 'GET' || req.method === 'HEAD') && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      let body: string;
      try {
        body = metrics.render();
      } catch (err) {
        // A scrape must never take the tunnel down.
        log.warn(`metrics: cannot render: ${(err as Error).message}`);
        res.writeHead(500, { 'Content-Type': 'text/plain', 'Content-Length': 0 });
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 9 });
    res.end('Not Found');
  });
  http.headersTimeout = METRICS_REQUEST_MS;
  http.requestTimeout = METRICS_REQUEST_MS;
  http.maxConnections = METRICS_CONNECTIONS;
  return new Promise((resolve, reject) => {
    http.once('error', (err: NodeJS.ErrnoException) =>
      reject(new TwsError('TWS_ERR_LISTEN', `cannot listen for metrics on ${formatHostPort(addr.host, addr.port)}: ${err.code ?? err.message}`)));
    http.listen(addr.port, addr.host, () => {
      const a = http.address() as AddressInfo;
      log.info(`metrics on http://${formatHostPort(a.address, a.port)}/metrics`);
      http.unref();  // never what keeps the process alive
      // Past the listen, an error (an accept failing for want of fds) is a line, not a crash.
      http.on('error', (err: NodeJS.ErrnoException) => log.debug(`metrics: ${err.code ?? err.message}`));
      resolve(http);
    });
  });
}
