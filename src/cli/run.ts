/**
 * Starts a server or client from a resolved config through the API (the one
 * composition root, api.ts) and handles the signals: SIGTERM/SIGINT drain,
 * SIGHUP reloads (the API does it when asked).
 */
import { createClient, createServer, runStdioClient } from '../api';
import type { ClientConfig, ServerConfig } from '../config/load';
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

/** Runs `tws server` until a signal stops it. */
export async function runServer(cfg: ServerConfig): Promise<void> {
  const { logLevel, tlsCert, tlsKey, drainTimeout, ...rest } = cfg;
  const log = createLogger(logLevel);
  const running = await createServer({
    ...rest,
    logger: log,
    tls: tlsCert && tlsKey ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
    reloadOnSighup: true,
  });
  onSignals(running, drainTimeout, log);
}

/** Runs `tws client` until a signal stops it. */
export async function runClient(cfg: ClientConfig): Promise<void> {
  const { logLevel, drainTimeout, ...rest } = cfg;
  const log = createLogger(logLevel);
  if (rest.stdio !== undefined) {
    // One stream, then exit with how it ended (a signal just ends the process: there is nothing to drain but that stream).
    process.exit(await runStdioClient({ ...rest, stdio: rest.stdio, logger: log }));
  }
  const running = await createClient({ ...rest, logger: log });
  onSignals(running, drainTimeout, log);
}
