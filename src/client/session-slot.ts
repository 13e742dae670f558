/**
 * One of the client's `connections` slots: keeps one TWS2 session to the
 * server up, reconnecting with jittered backoff whenever it drops.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { ConnectionOptions, createSecureContext, SecureContext } from 'node:tls';
import { buildAuthHeader } from '../auth/tws-auth';
import type { Engine, EngineSession, EngineTls, PendingUpgrade } from '../engine/types';
import { sessionOptions, validateSessionOptions } from '../engine/options';
import { describeClose, logSessionDown, sessionName } from '../engine/session-close';
import type { Logger } from '../util/log';
import { Backoff } from './backoff';
import { connectHint, ConnectOptions, describeTlsFailure } from './connect-options';
import { openTcp } from './open-tcp';
import { offeredFeatures, parseResponseHead, upgradeProblem, upgradeRequest } from '../protocol/upgrade';
import { rawUpgrade, UpgradeError } from './raw-upgrade';
import { TLS_SUITES } from '../util/tls-suites';
import { legacyTarget } from './legacy-target';

export interface SlotOptions {
  server: URL;
  passwd: string;
  user?: string;
  timeout: number;
  retryTimeout: number;
  udpTimeout?: number;
  idleTimeout?: number;
  bufferBudget?: number;
  maxStreams?: number;
  /** Take streams the server opens (the client has reverse tunnels). */
  acceptStreams?: boolean;
  engine: Engine;
  logger: Logger;
  connect?: ConnectOptions;
  /** Speak tws-rust 0.2's protocol (docs/legacy.md) with this one target (`host:port`; a name is resolved at each connect). */
  legacyTarget?: string;
}

/** A slot that keeps failing for the same reason says so at info at least this often (ms). */
const REPORT_EVERY_MS = 10 * 60_000;
/**
 * Streams a session may hold before one the server opens (reverse tunnels)
 * is refused with RESET 5: each costs this process a connection, and a
 * hostile server could otherwise make it dial 16384 per session (--max-streams).
 * The same number caps the server-opened streams of all sessions together
 * (reverse.ts), as a server can bring up session after session (GOAWAY).
 */
export const CLIENT_MAX_STREAMS = 1024;

/** Redacts anything secret-looking from a URL before it is logged. */
function showUrl(url: URL): string {
  const u = new URL(url.href);
  u.username = '';
  u.password = '';
  u.search = u.search ? '?…' : '';
  return u.href;
}

export class SessionSlot extends EventEmitter {
  /** The live session, if any; a session draining for GOAWAY is no longer here. */
  session: EngineSession | undefined;
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  /** Aborts the upgrade request in flight (Node TLS or plain). */
  private upgrading: AbortController | undefined;
  /** A client session whose TLS and upgrade the engine is running. */
  private pending: PendingUpgrade | undefined;
  /** A tws-rust session in its handshake (waiting for hello). */
  private handshaking: EngineSession | undefined;
  /** The trusted roots as one PEM string, built once: the native engine caches its TLS context by it. */
  private readonly caPem: string;
  private secureContext: SecureContext | undefined;
  private stopped = false;
  private lastError = '';
  /** Attempts that failed in a row, since when, and when that was last said at info or warn. */
  private failures = 0;
  private failingSince = 0;
  private reportedAt = 0;

  constructor(readonly index: number, private readonly opts: SlotOptions) {
    super();
    this.backoff = new Backoff(opts.retryTimeout);
    this.caPem = (opts.connect?.ca ?? []).join('\n');
    validateSessionOptions(this.sessionOptions());  // a bad option is an error at start, not at each connect
  }

  start(): void {
    this.connect();
  }

  /** Stops reconnecting; the live session is left to the caller to drain. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.upgrading?.abort();
    this.upgrading = undefined;
    this.pending?.abort();
    this.pending = undefined;
    this.handshaking?.close(1001, 'client stopping');
    this.handshaking = undefined;
  }

  private connect(): void {
    if (this.stopped) return;
    const { engine, server } = this.opts;
    // tws-rust sessions run in TypeScript on either engine (engine/legacy/), so wss:// goes through Node's TLS.
    if (this.opts.legacyTarget !== undefined) return this.connectLegacy(engine, this.opts.legacyTarget);
    // wss:// runs its TLS in the engine when the engine runs TLS itself (a
    // TLS socket cannot be handed over by fd), else in Node.
    if (server.protocol === 'wss:' && engine.tls) this.connectTls(engine.tls);
    else this.connectUpgrade(engine);
  }

  private sessionOptions(): ReturnType<typeof sessionOptions> {
    const o = this.opts;
    return {
      ...sessionOptions('client', {
        timeout: o.timeout, udpTimeout: o.udpTimeout, idleTimeout: o.idleTimeout, bufferBudget: o.bufferBudget, logger: o.logger,
        maxStreams: o.maxStreams ?? CLIENT_MAX_STREAMS,
      }),
      acceptStreams: o.acceptStreams === true,
    };
  }

  /**
   * Logs why a connection attempt failed and schedules the next one. A new
   * reason is a warning; the same one again is said at info on attempts 2,
   * 4, 8, … (and at least every REPORT_EVERY_MS), else at debug: a server
   * down for an hour is neither silent nor a flood.
   */
  private failed(reason: string): void {
    const why = `${reason}${connectHint(this.opts.server, reason)}`;
    this.emit('connect-failed', why);
    const delay = this.backoff.next();
    const now = Date.now();
    if (this.failures++ === 0) this.failingSince = now;
    const log = this.opts.logger;
    const url = showUrl(this.opts.server);
    const due = (this.failures & (this.failures - 1)) === 0 || now - this.reportedAt >= REPORT_EVERY_MS;
    if (why !== this.lastError) log.warn(`slot ${this.index}: cannot connect to ${url}: ${why}; retrying in ${delay} ms`);
    else if (due) log.info(`slot ${this.index}: still cannot reach ${url}: ${why}; attempt ${this.failures}, next in ${(delay / 1000).toFixed(1)} s`);
    else log.debug(`slot ${this.index}: cannot connect to ${url}: ${why}; attempt ${this.failures}, retrying in ${delay} ms`);
    if (why !== this.lastError || due) this.reportedAt = now;
    this.lastError = why;
    this.schedule(delay);
  }

  /** For the up line after failures: how long the server could not be reached. */
  private recovered(): string {
    if (this.failures === 0) return '';
    const secs = ((Date.now() - this.failingSince) / 1000).toFixed(1);
    const text = `; reachable again after ${this.failures} failed attempt${this.failures === 1 ? '' : 's'} in ${secs} s`;
    this.failures = 0;
    this.lastError = '';
    return text;
  }

  private static hint(status: number | undefined): string {
    if (status === 404) return ' (wrong password, path or clock, or not a tws server)';
    if (status === 503) return ' (the server is at its session limit, --max-sessions)';
    return '';
  }

  /** The upgrade request's own headers: user extras, Host override, and Tws-Auth (never overridable). */
  private headers(): Record<string, string> {
    const c = this.opts.connect ?? {};
    return { ...c.headers, ...(c.hostHeader ? { Host: c.hostHeader } : {}), 'Tws-Auth': buildAuthHeader(this.opts.passwd, this.opts.user) };
  }

  /** Node's TLS settings for wss:// (one secure context for every attempt: Node would otherwise parse all the roots again each time). */
  private nodeTls(): ConnectionOptions {
    const c = this.opts.connect ?? {};
    this.secureContext ??= createSecureContext({ ...TLS_SUITES, ...(c.ca ? { ca: c.ca } : {}) });
    const host = this.opts.server.hostname.replace(/^\[|\]$/g, '');
    const servername = c.sni ?? (isIP(host) ? undefined : host);
    return { secureContext: this.secureContext, rejectUnauthorized: !c.insecure, ...(servername ? { servername } : {}) };
  }

  /** ws://, or wss:// with TLS in Node: we do the upgrade and hand the engine the upgraded socket. */
  private connectUpgrade(engine: Engine): void {
    const { server, timeout } = this.opts;
    const secure = server.protocol === 'wss:';
    if (secure && !engine.adoptsTlsSockets) return this.failed(`the ${engine.name} engine can neither run TLS nor take a TLS socket`);
    const abort = new AbortController();
    this.upgrading = abort;
    rawUpgrade(server, this.headers(), timeout, { proxy: this.opts.connect?.proxy, tls: secure ? this.nodeTls() : undefined, signal: abort.signal })
      .then(({ socket, head, features }) => {
        this.upgrading = undefined;
        if (this.stopped) {
          socket.destroy();
          return;
        }
        this.attach(engine.adopt(socket, head, Buffer.alloc(0), this.sessionOptions()), features, secure ? `TLS in the ${engine.name} engine` : '');
      }, (err: UpgradeError) => {
        this.upgrading = undefined;
        if (!this.stopped) this.failed(`${err.message}${SessionSlot.hint(err.status)}`);
      });
  }

  /**
   * A tws-rust server: the upgrade offers no subprotocol and carries no
   * Tws-Auth (the password signs the first message instead); the session is
   * up once the server answered hello.
   */
  private connectLegacy(engine: Engine, remote: string): void {
    const { server, timeout } = this.opts;
    const secure = server.protocol === 'wss:';
    const abort = new AbortController();
    this.upgrading = abort;
    const c = this.opts.connect ?? {};
    const headers = { ...c.headers, ...(c.hostHeader ? { Host: c.hostHeader } : {}) };
    legacyTarget(remote, timeout).then((target) => {
      if (abort.signal.aborted) throw new UpgradeError('client stopping');
      return rawUpgrade(server, headers, timeout, { proxy: c.proxy, tls: secure ? this.nodeTls() : undefined, signal: abort.signal, subprotocol: null })
        .then((up) => ({ ...up, target }));
    }).then(({ socket, head, target }) => {
      this.upgrading = undefined;
      if (this.stopped) {
        socket.destroy();
        return;
      }
      const session = engine.adoptLegacy(socket, head, Buffer.alloc(0), this.sessionOptions(), { passwd: this.opts.passwd, target });
      this.handshaking = session;
      session.once('authenticated', () => {
        this.handshaking = undefined;
        this.attach(session, [], `tws-rust → ${target}${secure ? ', TLS in Node' : ''}`);
      });
      session.once('close', (code: number, reason: string) => {
        if (session.authenticated) return;
        this.handshaking = undefined;
        if (!this.stopped) this.failed(`tws-rust handshake failed: ${describeClose(code, reason)} (wrong password or clock, or not a tws-rust server?)`);
      });
    }, (err: Error) => {
      this.upgrading = undefined;
      if (!this.stopped) this.failed(`${err.message}${err instanceof UpgradeError ? SessionSlot.hint(err.status) : ''}`);
    });
  }

  /** wss:// on an engine that runs TLS itself: we open the TCP connection and judge the answer. */
  private connectTls(engineTls: EngineTls): void {
    const { server, timeout } = this.opts;
    const c = this.opts.connect ?? {};
    const host = server.hostname.replace(/^\[|\]$/g, '');
    const port = Number(server.port || 443);
    const key = randomBytes(16).toString('base64');
    let request: Buffer;
    try {
      request = upgradeRequest(server, this.headers(), key);
    } catch (err) {
      return this.failed((err as Error).message);
    }
    openTcp(host, port, timeout, c.proxy).then((socket) => {
      if (this.stopped) {
        socket.destroy();
        return;
      }
      const name = c.sni ?? host;
      const pending = engineTls.adoptTls(socket, { ca: this.caPem, insecure: c.insecure === true, servername: name, verifyName: name }, request, this.sessionOptions());
      this.pending = pending;
      pending.response.then((head) => {
        this.pending = undefined;
        const res = parseResponseHead(head);
        const problem = !res ? 'not an HTTP answer to the upgrade'
          : res.status !== 101 ? `server answered HTTP ${res.status}${SessionSlot.hint(res.status)}`
            : upgradeProblem(res.headers, key);
        if (problem || this.stopped) {
          pending.abort();
          if (problem) this.failed(problem);
          return;
        }
        this.attach(pending.accept(), offeredFeatures(res!.headers), `TLS in the ${this.opts.engine.name} engine`);
      }, (err: Error) => {
        this.pending = undefined;
        if (!this.stopped) this.failed(err.message.startsWith('TLS: ') ? describeTlsFailure(err.message) : err.message);
      });
    }, (err: Error) => this.failed(err.message));
  }

  /** A session is up; `features` are what the server's 101 offered (Tws-Features). */
  private attach(session: EngineSession, features: string[], how = ''): void {
    const log = this.opts.logger.child(sessionName(session));
    const started = Date.now();
    this.session = session;
    log.info(`up → ${showUrl(this.opts.server)} (slot ${this.index}${how ? `, ${how}` : ''}${this.recovered()})`);
    const detach = (): void => {
      if (this.session !== session) return;
      this.session = undefined;
      this.backoff.sessionEnded(Date.now() - started);
      if (!this.stopped) this.schedule(this.backoff.next());
    };
    session.on('goaway', () => {
      // The server is draining this session: let it finish its streams and
      // bring up a replacement now, so new connections have somewhere to go.
      detach();
    });
    session.on('idle', () => {
      if (session.peerDraining) session.close(1000, 'drained');
    });
    session.on('close', (code: number, reason: string) => {
      logSessionDown(log, code, reason, started, session.stats());
      detach();
      this.emit('down', session);
    });
    this.emit('up', session, features);
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
