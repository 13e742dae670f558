/** Starts a server or client from a resolved config and handles signals. */
import { TwsClient } from '../client/client';
import type { ClientConfig, ServerConfig } from '../config/load';
import { selectEngine } from '../engine/select';
import { TwsServer } from '../server/server';
import { createLogger, Logger } from '../util/log';

interface Stoppable {
  shutdown(drainMs: number): Promise<void>;
}

/** SIGTERM/SIGINT drain gracefully and exit 0; a second signal exits at once. */
function onSignals(target: Stoppable, drainMs: number, log: Logger): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (stopping) {
      log.warn(`${sig} again: exiting without draining`);
      process.exit(1);
    }
    stopping = true;
    log.info(`${sig}: shutting down (drain up to ${drainMs} ms)`);
    target.shutdown(drainMs).then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: Error) => {
        log.error(`shutdown failed: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

export async function runServer(cfg: ServerConfig): Promise<void> {
  const log = createLogger(cfg.logLevel);
  const engine = selectEngine(cfg.engine, (why) => log.warn(`native engine unavailable (${why}); using the js engine`), cfg.threads);
  const server = new TwsServer({
    listen: cfg.listen,
    path: cfg.path,
    passwd: cfg.passwd,
    timeout: cfg.timeout,
    connectTimeout: cfg.connectTimeout,
    udpTimeout: cfg.udpTimeout,
    noUdp: cfg.noUdp,
    engine,
    logger: log,
  });
  await server.listen();
  onSignals(server, cfg.drainTimeout, log);
}

export async function runClient(cfg: ClientConfig): Promise<void> {
  const log = createLogger(cfg.logLevel);
  const engine = selectEngine(cfg.engine, (why) => log.warn(`native engine unavailable (${why}); using the js engine`), cfg.threads);
  const client = new TwsClient({
    listen: cfg.listen,
    server: cfg.server,
    remote: cfg.remote,
    passwd: cfg.passwd,
    connections: cfg.connections,
    timeout: cfg.timeout,
    retryTimeout: cfg.retryTimeout,
    udpTimeout: cfg.udpTimeout,
    noUdp: cfg.noUdp,
    engine,
    logger: log,
  });
  await client.listen();
  onSignals(client, cfg.drainTimeout, log);
}
