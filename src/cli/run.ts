/** Starts a server or client from a resolved config and handles signals. */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { TwsClient } from '../client/client';
import { connectOptions } from '../client/connect-options';
import { showProxy } from '../client/proxy';
import type { ClientConfig, ServerConfig } from '../config/load';
import { selectEngine } from '../engine/select';
import { AllowList } from '../server/allow-list';
import { TwsServer } from '../server/server';
import { loadUsers } from '../server/users';
import { TwsError } from '../util/errors';
import type { EngineSession } from '../engine/types';
import { serveMetrics } from '../metrics/endpoint';
import { Metrics } from '../metrics/metrics';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../../package.json').version;
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

/** Reads --tls-cert/--tls-key; any problem is one config error naming the file. */
function readTls(cfg: ServerConfig): { cert: Buffer; key: Buffer } | undefined {
  if (!cfg.tlsCert || !cfg.tlsKey) return undefined;
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TwsError('TWS_ERR_CONFIG', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const tls = { cert: read(cfg.tlsCert, 'TLS certificate'), key: read(cfg.tlsKey, 'TLS key') };
  try {
    createSecureContext(tls);
  } catch (err) {
    // OpenSSL's message names the problem (e.g. key values mismatch), never the key itself.
    throw new TwsError('TWS_ERR_CONFIG', `bad TLS certificate/key (${cfg.tlsCert}, ${cfg.tlsKey}): ${(err as Error).message}`);
  }
  return tls;
}

export async function runServer(cfg: ServerConfig): Promise<void> {
  const log = createLogger(cfg.logLevel);
  const engine = selectEngine(cfg.engine, (why) => log.warn(`native engine unavailable (${why}); using the js engine`), cfg.threads, cfg.busyPoll);
  const server = new TwsServer({
    listen: cfg.listen,
    path: cfg.path,
    passwd: cfg.passwd,
    timeout: cfg.timeout,
    connectTimeout: cfg.connectTimeout,
    udpTimeout: cfg.udpTimeout,
    idleTimeout: cfg.idleTimeout,
    noUdp: cfg.noUdp,
    bufferBudget: cfg.bufferBudget,
    engine,
    logger: log,
    tls: readTls(cfg),
    // No allow key at all: everything; an explicit list, even an empty one: only what it matches.
    allow: cfg.allow === undefined ? undefined : new AllowList(cfg.allow),
    users: cfg.users ? loadUsers(cfg.users) : undefined,
    maxSessions: cfg.maxSessions,
    maxStreams: cfg.maxStreams,
  });
  if (cfg.metrics) {
    const metrics = new Metrics('server', engine.name, VERSION, () => engine.stats().datagramsDropped + server.datagramsDropped);
    server.on('session', (s: EngineSession) => metrics.track(s));
    await serveMetrics(cfg.metrics, metrics, log);
  }
  await server.listen();
  onSignals(server, cfg.drainTimeout, log);
  if (cfg.tlsCert || cfg.users) {
    process.on('SIGHUP', () => {
      if (cfg.tlsCert) {
        try {
          server.reloadTls(readTls(cfg)!);
          log.info(`SIGHUP: reloaded TLS certificate ${cfg.tlsCert}`);
        } catch (err) {
          log.error(`SIGHUP: kept the old TLS certificate: ${(err as Error).message}`);
        }
      }
      if (cfg.users) {
        try {
          const r = server.reloadUsers(loadUsers(cfg.users));
          log.info(`SIGHUP: reloaded users from ${cfg.users}: ${r.kept} session(s) kept, ${r.closed} closed`);
        } catch (err) {
          log.error(`SIGHUP: kept the old users: ${(err as Error).message}`);
        }
      }
    });
  }
}

export async function runClient(cfg: ClientConfig): Promise<void> {
  const log = createLogger(cfg.logLevel);
  const engine = selectEngine(cfg.engine, (why) => log.warn(`native engine unavailable (${why}); using the js engine`), cfg.threads, cfg.busyPoll);
  const connect = connectOptions(cfg);
  if (connect.proxy) log.info(`reaching ${cfg.server.host} through proxy ${showProxy(connect.proxy)}`);
  if (connect.insecure) log.warn('--insecure: the server certificate is NOT verified; anyone on the path can read and change the tunnel');
  const client = new TwsClient({
    listen: cfg.listen,
    server: cfg.server,
    remote: cfg.remote,
    passwd: cfg.passwd,
    connections: cfg.connections,
    timeout: cfg.timeout,
    retryTimeout: cfg.retryTimeout,
    udpTimeout: cfg.udpTimeout,
    idleTimeout: cfg.idleTimeout,
    noUdp: cfg.noUdp,
    bufferBudget: cfg.bufferBudget,
    engine,
    logger: log,
    connect,
    user: cfg.user,
  });
  if (cfg.metrics) {
    const metrics = new Metrics('client', engine.name, VERSION, () => engine.stats().datagramsDropped);
    client.on('session', (s: EngineSession, slot: number) => metrics.track(s, slot));
    client.on('connect-failed', () => metrics.connectFailed());
    await serveMetrics(cfg.metrics, metrics, log);
  }
  await client.listen();
  onSignals(client, cfg.drainTimeout, log);
}
