/**
 * The programmatic API, and the one place tws is put together: the CLI
 * (cli/run.ts) is a thin layer over it. `createServer` / `createClient` take
 * the same settings as the command line (addresses as strings, the engine
 * by name, TLS and users as files or contents, metrics) and return a
 * listening TwsServer / TwsClient. Nothing here keeps the process alive once
 * every server and client is shut down.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { TwsClient, TwsClientOptions } from './client/client';
import { ConnectOptions, connectOptions } from './client/connect-options';
import { runStdio, stdioPollable } from './client/stdio';
import { checkDistinct, parseBindPort, parseReverse, parseTunnelSpec, ReverseSpec, TunnelSpec } from './config/tunnels';
import { SocksLogins } from './client/socks/auth';
import { EngineChoice, selectEngine } from './engine/select';
import type { Engine, EngineSession } from './engine/types';
import { serveMetrics } from './metrics/endpoint';
import { Metrics } from './metrics/metrics';
import { AllowList, AllowRule, parseAllowRules } from './policy/allow-list';
import { TwsServer, TwsServerOptions } from './server/server';
import { loadUsers, User } from './server/users';
import { HostPort, parseHostPort } from './util/address';
import { errorLine, fail } from './util/errors';
import { Logger, silentLogger } from './util/log';
import { parseProxyUrl, showProxy } from './util/proxy-url';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../package.json').version;

interface Common {
  /** `auto` (default: native when it loads, else js), `js`, `native`, or an Engine. */
  engine?: EngineChoice | Engine;
  /** Native engine I/O threads; default 1. */
  threads?: number;
  /** Native engine: microseconds to keep polling after traffic (--busy-poll); default 0. */
  busyPoll?: number;
  /** Where log lines go; default: nowhere. Use createLogger('info') for stderr. */
  logger?: Logger;
  /** Serve Prometheus text at http://ADDR/metrics (`host:port`); default: no endpoint. */
  metrics?: string | HostPort;
}

/** TLS for the server: PEM contents, or the files to read them from (read again by reload()). */
export type ServerTls = { cert: string | Buffer; key: string | Buffer } | { certFile: string; keyFile: string };

export type CreateServerOptions = Omit<TwsServerOptions, 'listen' | 'engine' | 'logger' | 'tls' | 'allow' | 'allowReverse' | 'users'> & Common & {
  listen: string | HostPort;
  tls?: ServerTls;
  /** Targets streams may reach, as rules (`10.0.0.0/8:22`) or an AllowList; absent = everywhere, empty = nowhere. */
  allow?: AllowList | readonly (string | AllowRule)[];
  /** Where clients may open reverse tunnels (-R), the same kind of rules matching the bind address; absent or empty = nowhere. */
  allowReverse?: AllowList | readonly (string | AllowRule)[];
  /** Per-user passwords and allow-lists: a users file (read again by reload()) or the users themselves. */
  users?: string | Map<string, User>;
  /** SIGHUP calls reload() (the CLI sets this); default false. */
  reloadOnSighup?: boolean;
};

export type CreateClientOptions = Omit<TwsClientOptions, 'listen' | 'server' | 'engine' | 'logger' | 'tunnels' | 'httpConnect' | 'socks' | 'socksLogins' | 'reverse'> & Common & {
  /** An HTTP CONNECT proxy listener, `[BIND:]PORT` (`8080`, `127.0.0.1:0`) or parsed; loopback only. */
  httpConnect?: string | number | HostPort;
  /** tws-rust's one tunnel, with `remote`; optional when `tunnels` are given. */
  listen?: string | HostPort;
  /** More tunnels: `-L` specs (`2222:db:22`, `5353:ns:53/udp`) or parsed ones. */
  tunnels?: readonly (string | TunnelSpec)[];
  /** A SOCKS5 listener: `[BIND:]PORT` (`1080`, `127.0.0.1:1080`) or a parsed address. */
  socks?: string | number | HostPort;
  /** A file of `user:password` lines the SOCKS listener requires (RFC 1929); needed off loopback. */
  socksAuth?: string;
  /** Reverse tunnels: `-R` specs (`8080:127.0.0.1:80`) or parsed ones. */
  reverse?: readonly (string | ReverseSpec)[];
  server: string | URL;
  /** wss://: a file of PEM certificates to trust besides the system roots (ignored when `connect` is given). */
  ca?: string;
  /** wss://: skip certificate verification (ignored when `connect` is given). */
  insecure?: boolean;
  /** wss://: the name for SNI and verification instead of the URL's host (ignored when `connect` is given). */
  sni?: string;
  /** Host header instead of the URL's host (ignored when `connect` is given). */
  hostHeader?: string;
  /** Extra upgrade headers (ignored when `connect` is given). */
  headers?: Record<string, string>;
  /** HTTP CONNECT proxy; default HTTPS_PROXY / HTTP_PROXY unless NO_PROXY (ignored when `connect` is given). */
  proxy?: string | URL;
};

export interface RunningServer {
  server: TwsServer;
  address: AddressInfo;
  /** Where the metrics endpoint listens, when asked for. */
  metrics?: AddressInfo;
  /** Reads the TLS files and the users file again (what SIGHUP does); a bad file is logged and the old one kept. */
  reload(why?: string): void;
  /** Drains and stops the server (see TwsServer.shutdown), the metrics endpoint and the SIGHUP handler. */
  shutdown(drainMs: number): Promise<void>;
}

export interface RunningClient {
  client: TwsClient;
  /** The first tunnel's bound address (-l/-r's when given). */
  address: AddressInfo;
  /** Every tunnel's name and bound address, -l/-r's first. */
  tunnels: { name: string; address: AddressInfo | undefined }[];
  metrics?: AddressInfo;
  /** Drains and stops the client (see TwsClient.shutdown) and the metrics endpoint. */
  shutdown(drainMs: number): Promise<void>;
}

function address(value: string | HostPort, what: string): HostPort {
  if (typeof value !== 'string') return value;
  const parsed = parseHostPort(value, true);
  if (typeof parsed === 'string') fail('TWS_ERR_CONFIG', `${what}: ${parsed}`);
  return parsed;
}

function bindPort(value: string | number | HostPort, what: string): HostPort {
  return typeof value === 'object' ? value : parseBindPort(String(value), what);
}

function engineOf(o: Common, logger: Logger): Engine {
  if (typeof o.engine === 'object') return o.engine;
  return selectEngine(o.engine ?? 'auto', (why) => logger.warn(`native engine unavailable, using the js engine: ${why}`), o.threads ?? 1, o.busyPoll ?? 0);
}

/** Reads TLS files (or takes contents) and checks that Node accepts them; any problem is one config error naming the files. */
function readTls(tls: ServerTls): { cert: string | Buffer; key: string | Buffer } {
  if ('cert' in tls) return tls;
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      return fail('TWS_ERR_CONFIG', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const pem = { cert: read(tls.certFile, 'TLS certificate'), key: read(tls.keyFile, 'TLS key') };
  try {
    createSecureContext(pem);
  } catch (err) {
    // OpenSSL's message names the problem (e.g. key values mismatch), never the key itself.
    fail('TWS_ERR_CONFIG', `bad TLS certificate/key (${tls.certFile}, ${tls.keyFile}): ${(err as Error).message}`);
  }
  return pem;
}

/** The metrics endpoint for `o.metrics`, fed by `register`; undefined when none is asked for. */
async function startMetrics(o: Common, role: 'server' | 'client', engine: Engine, logger: Logger,
  dropped: () => number, register: (m: Metrics) => void) {
  if (!o.metrics) return undefined;
  const metrics = new Metrics(role, engine.name, VERSION, dropped);
  register(metrics);
  return serveMetrics(address(o.metrics, 'metrics'), metrics, logger);
}

/** Rules given as strings or parsed, as an AllowList; undefined stays undefined. */
function allowList(rules: AllowList | readonly (string | AllowRule)[] | undefined, where: string): AllowList | undefined {
  return rules === undefined || rules instanceof AllowList ? rules
    : new AllowList(rules.map((r) => (typeof r === 'string' ? parseAllowRules(r, where)[0]! : r)));
}

/** Starts a tws server; resolves once it listens. Stop it with `shutdown(drainMs)`. */
export async function createServer(o: CreateServerOptions): Promise<RunningServer> {
  const logger = o.logger ?? silentLogger;
  const engine = engineOf(o, logger);
  const allow = allowList(o.allow, 'allow');
  const allowReverse = allowList(o.allowReverse, 'allowReverse');
  const usersFile = typeof o.users === 'string' ? o.users : undefined;
  const server = new TwsServer({
    ...o,
    listen: address(o.listen, 'listen'),
    engine,
    logger,
    tls: o.tls && readTls(o.tls),
    allow,
    allowReverse,
    users: usersFile ? loadUsers(usersFile) : (o.users as Map<string, User> | undefined),
  });
  const metricsServer = await startMetrics(o, 'server', engine, logger, () => engine.stats().datagramsDropped + server.datagramsDropped,
    (m) => server.on('session', (s: EngineSession) => m.track(s)));
  const addr = await server.listen();
  const tlsFiles = o.tls && 'certFile' in o.tls ? o.tls : undefined;
  const reload = (why = 'reload'): void => {
    if (tlsFiles) {
      try {
        server.reloadTls(readTls(tlsFiles));
        logger.info(`${why}: reloaded TLS certificate ${tlsFiles.certFile}`);
      } catch (err) {
        logger.error(`${why}: kept the old TLS certificate: ${errorLine(err)}`);
      }
    }
    if (usersFile) {
      try {
        const r = server.reloadUsers(loadUsers(usersFile));
        logger.info(`${why}: reloaded users from ${usersFile}: ${r.kept} session(s) kept, ${r.closed} closed`);
      } catch (err) {
        logger.error(`${why}: kept the old users: ${errorLine(err)}`);
      }
    }
  };
  const onSighup = (): void => reload('SIGHUP');
  if (o.reloadOnSighup && (tlsFiles || usersFile)) process.on('SIGHUP', onSighup);
  return {
    server,
    address: addr,
    metrics: metricsServer?.address() as AddressInfo | undefined,
    reload,
    async shutdown(drainMs) {
      process.off('SIGHUP', onSighup);
      metricsServer?.close();
      await server.shutdown(drainMs);
    },
  };
}

/** The server URL and how to reach it (TLS, headers, proxy), said once in the log. */
function clientConnect(o: CreateClientOptions, logger: Logger): { url: URL; connect: ConnectOptions } {
  const url = typeof o.server === 'string' ? new URL(o.server) : o.server;
  const connect = o.connect ?? connectOptions({
    server: url, ca: o.ca, insecure: o.insecure, sni: o.sni, hostHeader: o.hostHeader, headers: o.headers,
    proxy: typeof o.proxy === 'string' ? parseProxyUrl(o.proxy, 'proxy') : o.proxy,
  });
  if (connect.proxy) logger.info(`reaching ${url.host} through proxy ${showProxy(connect.proxy)}`);
  if (connect.insecure) logger.warn('--insecure: the server certificate is NOT verified; anyone on the path can read and change the tunnel');
  return { url, connect };
}

/**
 * `tws client --stdio`: carries this process's stdin/stdout to `stdio`
 * (`host:port`) over one session (no listener, no pool; tunnels, listen and
 * connections are not used); resolves with the exit code once the stream
 * ended (see runStdio). `auto` takes the js engine when stdin or stdout is
 * not a pipe or socket (a TTY, a file), which the native engine cannot carry.
 */
export async function runStdioClient(o: CreateClientOptions & { stdio: string }): Promise<number> {
  const logger = o.logger ?? silentLogger;
  if (o.legacy) fail('TWS_ERR_CONFIG', 'legacy: a tws-rust session carries one tunnel, listen with remote; not --stdio');
  const pollable = stdioPollable();
  if (o.engine === 'native' && !pollable) {
    fail('TWS_ERR_CONFIG', '--stdio with --engine native needs stdin and stdout to be pipes or sockets (not a terminal or a file); use --engine js or auto');
  }
  const engine = !pollable && (o.engine ?? 'auto') === 'auto' ? selectEngine('js') : engineOf(o, logger);
  const { url, connect } = clientConnect(o, logger);
  if (o.metrics) logger.warn('--metrics is not served with --stdio (one stream, then exit)');
  return runStdio({ ...o, remote: o.stdio, server: url, engine, logger, connect });
}

/** Starts a tws client; resolves once its local port listens (sessions come up in the background). */
export async function createClient(o: CreateClientOptions): Promise<RunningClient> {
  const logger = o.logger ?? silentLogger;
  const engine = engineOf(o, logger);
  const { url, connect } = clientConnect(o, logger);
  const tunnels = (o.tunnels ?? []).map((x) => (typeof x === 'string' ? parseTunnelSpec(x, 'tunnels') : x));
  const httpConnect = o.httpConnect === undefined ? undefined : bindPort(o.httpConnect, 'httpConnect');
  const socks = o.socks === undefined ? undefined : bindPort(o.socks, 'socks');
  const proxies = [{ listen: httpConnect, name: 'httpConnect' }, { listen: socks, name: 'socks' }];
  checkDistinct([...tunnels, ...proxies.flatMap((p) => (p.listen ? [{ listen: p.listen, remote: '*', udp: false, name: p.name }] : []))]);
  const listen = o.listen === undefined ? undefined : address(o.listen, 'listen');
  const socksLogins = o.socksAuth === undefined ? undefined : SocksLogins.fromFile(o.socksAuth);
  const reverse = (o.reverse ?? []).map((x) => (typeof x === 'string' ? parseReverse(x, 'reverse')[0]! : x));
  const client = new TwsClient({ ...o, listen, tunnels, httpConnect, socks, socksLogins, reverse, server: url, engine, logger, connect });
  const metricsServer = await startMetrics(o, 'client', engine, logger, () => engine.stats().datagramsDropped, (m) => {
    client.on('session', (s: EngineSession, slot: number) => m.track(s, slot));
    client.on('connect-failed', () => m.connectFailed());
  });
  const addr = await client.listen();
  return {
    client,
    address: addr,
    tunnels: client.addresses,
    metrics: metricsServer?.address() as AddressInfo | undefined,
    async shutdown(drainMs) {
      metricsServer?.close();
      await client.shutdown(drainMs);
    },
  };
}
