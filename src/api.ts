/**
 * The programmatic API: `createServer` / `createClient` take the same
 * settings as the command line (addresses as strings, engine by name) and
 * return a listening TwsServer / TwsClient. Nothing here keeps the process
 * alive once every server and client is shut down.
 */
import type { AddressInfo } from 'node:net';
import { TwsClient, TwsClientOptions } from './client/client';
import { EngineChoice, selectEngine } from './engine/select';
import type { Engine } from './engine/types';
import { TwsServer, TwsServerOptions } from './server/server';
import { HostPort, parseHostPort } from './util/address';
import { TwsError } from './util/errors';
import { Logger, silentLogger } from './util/log';

interface Common {
  /** `auto` (default: native when it loads, else js), `js`, `native`, or an Engine. */
  engine?: EngineChoice | Engine;
  /** Native engine I/O threads; default 1. */
  threads?: number;
  /** Native engine: microseconds to keep polling after traffic (--busy-poll); default 0. */
  busyPoll?: number;
  /** Where log lines go; default: nowhere. Use createLogger('info') for stderr. */
  logger?: Logger;
}

export type CreateServerOptions = Omit<TwsServerOptions, 'listen' | 'engine' | 'logger'> & Common & { listen: string | HostPort };
export type CreateClientOptions = Omit<TwsClientOptions, 'listen' | 'server' | 'engine' | 'logger'> &
  Common & { listen: string | HostPort; server: string | URL };

function address(value: string | HostPort, what: string): HostPort {
  if (typeof value !== 'string') return value;
  const parsed = parseHostPort(value, true);
  if (typeof parsed === 'string') throw new TwsError('TWS_ERR_CONFIG', `${what}: ${parsed}`);
  return parsed;
}

function engineOf(o: Common, logger: Logger): Engine {
  if (typeof o.engine === 'object') return o.engine;
  return selectEngine(o.engine ?? 'auto', (why) => logger.warn(`native engine unavailable (${why}); using the js engine`), o.threads ?? 1, o.busyPoll ?? 0);
}

/** Starts a tws server; resolves once it listens. Stop it with `shutdown(drainMs)`. */
export async function createServer(o: CreateServerOptions): Promise<{ server: TwsServer; address: AddressInfo }> {
  const logger = o.logger ?? silentLogger;
  const server = new TwsServer({ ...o, listen: address(o.listen, 'listen'), engine: engineOf(o, logger), logger });
  return { server, address: await server.listen() };
}

/** Starts a tws client; resolves once its local port listens (sessions come up in the background). */
export async function createClient(o: CreateClientOptions): Promise<{ client: TwsClient; address: AddressInfo }> {
  const logger = o.logger ?? silentLogger;
  const url = typeof o.server === 'string' ? new URL(o.server) : o.server;
  const client = new TwsClient({ ...o, listen: address(o.listen, 'listen'), server: url, engine: engineOf(o, logger), logger });
  return { client, address: await client.listen() };
}
