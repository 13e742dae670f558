/**
 * `tws server`: an HTTP server that turns authenticated upgrades on one path
 * into TWS2 sessions and answers everything else with 404.
 */
import { EventEmitter } from 'node:events';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { AddressInfo, createServer as createNetServer, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { shortPasswordNote } from '../auth/password-length';
import { partyName, ReplayCache, verifyAuthHeader } from '../auth/tws-auth';
import type { Engine, EngineSession, OpenRequest } from '../engine/types';
import { drainSessions } from '../engine/drain';
import { sessionOptions, validateSessionOptions } from '../engine/options';
import { openLines } from '../engine/stream-log';
import { sessionDownLine, sessionName } from '../engine/session-close';
import { AUTH_HEADER, CloseCode, FEATURE_REVERSE, ResetCode, StreamKind } from '../protocol/constants';
import { formatHostPort, formatPeer, HostPort } from '../util/address';
import { TwsError } from '../util/errors';
import { Logger, peerText, RateLimitedLog, SESSION_LINES } from '../util/log';
import { AllowList } from '../policy/allow-list';
import type { User } from './users';
import { connectTarget, connectUdpTarget, refuse, StreamPolicy } from './connect-target';
import { currentFdPlan, FdPlan, StreamSlots } from './fd-budget';
import { AheadGrant, AheadGrants } from './answer-ahead';
import type { UserLookups } from './lookups';
import { upgradeResponse } from '../protocol/upgrade';
import { ReverseListeners } from './reverse-listeners';
import { checkUpgradeRequest, isLegacyUpgrade, peerName, respond404, respond503 } from './upgrade-check';
import { LEGACY_AUTH_WARNING, LEGACY_NO_PASSWORD } from './legacy-notes';
import { TLS_SUITES } from '../util/tls-suites';
import { boundTlsBacklog } from '../net/tls-backlog';

/** The rules of a session whose user was removed (or whose password changed) while it closes: nothing. */
const NOTHING = new AllowList([]);
/** A TLS handshake and an upgrade request must come within this (a stalled or trickling one is cut: slowloris). */
const PRE_UPGRADE_MS = 9_000;

export interface TwsServerOptions {
  listen: HostPort;
  /** Upgrade path; default `/`. */
  path?: string;
  /** The shared password; optional when `users` is given (then every client names a user). */
  passwd?: string;
  /** Per-user passwords and allow-lists (--users); replace with reloadUsers(). */
  users?: Map<string, User>;
  /** Liveness timeout in ms; default 5000. */
  timeout?: number;
  /** Target connect timeout in ms; default 10000. */
  connectTimeout?: number;
  /** Idle time before a udp stream ends (ms); default 60000. */
  udpTimeout?: number;
  /** Reset tcp streams idle this long (ms); default 0 = never. */
  idleTimeout?: number;
  /** Refuse udp streams. */
  noUdp?: boolean;
  /** Replay window for Tws-Auth timestamps in ms; default 30000. */
  replayWindow?: number;
  engine: Engine;
  logger: Logger;
  /** Sessions at once (default 1024); an authenticated upgrade beyond it gets 503. */
  maxSessions?: number;
  /** Open streams per session (default 16384); more get RESET 5. */
  maxStreams?: number;
  /** Targets streams may reach: undefined = all; an empty list = none. */
  allow?: AllowList;
  /** Where clients may open reverse tunnels (-R); undefined or empty = nowhere. Users' allow_reverse replaces it. */
  allowReverse?: AllowList;
  /** MiB of flow-control credit all sessions together may have outstanding; 0/undefined = a quarter of RAM (256 MiB-2 GiB). */
  bufferBudget?: number;
  /**
   * Stream and session limits from the file descriptor limit; default: planned
   * from RLIMIT_NOFILE at construction (undefined where it cannot be read).
   */
  fdPlan?: FdPlan;
  /** Serve wss:// directly (PEM certificate chain and key): TLS in the engine when it runs TLS itself (native), else in Node. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Also serve tws-rust 0.2 clients (docs/legacy.md): an upgrade without the
   * tws2 subprotocol and without Tws-Auth becomes a tws-rust session, signed
   * with the shared password. Default false: such an upgrade gets 404.
   */
  legacy?: boolean;
}

export class TwsServer extends EventEmitter {
  private readonly http: Server;
  /** With TLS in the native engine: the listener, whose connections reach `http` decrypted. */
  private readonly tcp: NetServer | undefined;
  private tlsContext: object | undefined;
  /** Builds the engine's TLS context (when TLS runs there). */
  private readonly buildTlsContext: ((cert: string | Buffer, key: string | Buffer) => object | string) | undefined;
  private readonly sessions = new Set<EngineSession>();
  /** Who each session authenticated as (users file), for per-user allow-lists and reloads. */
  private readonly sessionUser = new Map<EngineSession, User>();
  /** Sessions whose engine may open streams ahead of JavaScript (answer-ahead.ts): revoked when the policy may change. */
  private readonly ahead = new AheadGrants();
  /**
   * With --users, what each party (a user, or '' for the shared password)
   * holds of the process-wide pools: its shares are half of each. Entries are
   * never dropped, as lookups outlive sessions; there are only as many as the
   * users file ever named.
   */
  private readonly parties = new Map<string, { sessions: number; lookups: UserLookups }>();
  private users: Map<string, User> | undefined;
  private readonly replay: ReplayCache;
  private readonly path: string;
  private readonly replayWindow: number;
  private stopping = false;
  /** Streams held per session against the file descriptor plan. */
  private readonly slots: StreamSlots<EngineSession> | undefined;
  private readonly fdPlan: FdPlan | undefined;
  private readonly maxSessions: number;
  /** UDP payloads dropped on the way to targets (see connect-target). */
  datagramsDropped = 0;
  private readonly sessionOpts: ReturnType<typeof sessionOptions>;
  /** Connections before their upgrade, and at most how many (native TLS fronts; plain ones Node caps). */
  private pending = 0;
  private readonly maxPending: number;
  private readonly refusedRequests: RateLimitedLog;
  private readonly droppedConnections: RateLimitedLog;
  private readonly tlsFailures: RateLimitedLog;
  private readonly sessionLines: RateLimitedLog;
  private readonly reverse: ReverseListeners;
  /** What the 101 offers (Tws-Features). */
  private readonly features: string[];
  /** tws-rust sessions upgraded and still in their handshake (bounded like connections before their upgrade). */
  private legacyHandshakes = 0;
  /**
   * Native TLS fronts by their decrypted socket: how one stops counting as a
   * connection before its upgrade. A tws-rust session runs in JavaScript on
   * its front's socket for its whole life, so the front stays open (and
   * counted in the engine's `fronts`) after the handshake: up, it is a session.
   */
  private readonly frontUpgraded = new WeakMap<Duplex, () => void>();
  /** tws-rust sessions up on a native TLS front (counted in the engine's `fronts`, but past their upgrade). */
  private legacyOnFronts = 0;

  constructor(private readonly opts: TwsServerOptions) {
    super();
    this.path = opts.path ?? '/';
    this.users = opts.users;
    this.replayWindow = opts.replayWindow ?? 30_000;
    // Test hook only (never documented): a smaller nonce cache, so a test can fill it.
    this.replay = new ReplayCache(this.replayWindow, Number(process.env.TWS_TEST_REPLAY_CACHE) || undefined);
    // Checked once here, so a bad option is an error at start, not in every upgrade.
    this.sessionOpts = sessionOptions('server', opts);
    validateSessionOptions(this.sessionOpts);
    this.fdPlan = opts.fdPlan ?? currentFdPlan(opts.maxSessions ?? 1024);
    this.slots = this.fdPlan ? new StreamSlots(this.fdPlan) : undefined;
    this.maxSessions = Math.min(opts.maxSessions ?? 1024, this.fdPlan?.sessions ?? Infinity);
    this.maxPending = this.fdPlan?.pending ?? 1024;
    // Anyone can make the server log a refused request: those lines are rate-limited.
    this.refusedRequests = new RateLimitedLog(opts.logger, 'refused requests');
    this.droppedConnections = new RateLimitedLog(opts.logger, 'connections dropped');
    this.tlsFailures = new RateLimitedLog(opts.logger, 'failed TLS handshakes');
    this.sessionLines = new RateLimitedLog(opts.logger, 'session up/down lines', SESSION_LINES);
    this.reverse = new ReverseListeners({
      logger: opts.logger,
      // A user no longer in the users file may hold nothing (a reload closes its listeners at once).
      rulesFor: (user) => {
        if (user === undefined) return this.opts.allowReverse;
        const u = this.users?.get(user);
        return u ? u.allowReverse ?? this.opts.allowReverse : undefined;
      },
      // A client's sessions may be gone briefly (a reconnect): its listeners wait this long for it.
      graceMs: 3 * this.sessionOpts.timeoutMs,
      maxStreams: this.sessionOpts.maxStreams,
      waitingSlots: this.slots && { hold: () => this.slots!.holdWaiting(), release: () => this.slots!.releaseWaiting() },
    });
    // Test hook only (never documented): a server that predates reverse tunnels offers nothing.
    this.features = process.env.TWS_TEST_NO_FEATURES === '1' ? [] : [FEATURE_REVERSE];
    const notFound = (req: IncomingMessage, res: ServerResponse): void => {
      this.refusedRequests.line('debug', `404 for ${req.method} ${JSON.stringify((req.url ?? '').slice(0, 100))} from ${peerName(req)}: not an upgrade`);
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 9, Connection: 'close' });
      res.end('Not Found');
    };
    // Timeouts are only checked every connectionsCheckingInterval (30 s by default): check each second.
    const httpOpts = { connectionsCheckingInterval: 1000 };
    // How long a connection may take for its TLS handshake and upgrade request. Test hook only (never documented):
    // a test of another bound lifts it, so that only the bound under test can end the connection.
    const preUpgradeMs = Number(process.env.TWS_TEST_PRE_UPGRADE_MS) || PRE_UPGRADE_MS;
    const engine = opts.engine;
    const engineTls = opts.tls ? engine.tls : undefined;
    if (opts.tls && !engineTls && !engine.adoptsTlsSockets) {
      throw new TwsError('TWS_ERR_CONFIG', `the ${engine.name} engine can neither run TLS nor take TLS sockets: serve wss:// with another engine`);
    }
    if (opts.tls && engineTls) {
      // TLS in the engine: it hands the HTTP server a socket with the decrypted bytes.
      this.buildTlsContext = engineTls.serverContext;
      this.tlsContext = engineTlsContext(this.buildTlsContext, opts.tls);
      this.http = createServer(httpOpts, notFound);
      const frontTls = engineTls.frontTls;
      this.tcp = createNetServer({ noDelay: true }, (socket) => {
        socket.on('error', () => undefined);
        const peer = formatPeer(socket);
        // Connections before their upgrade hold fds (three each here) and need no password: they are capped.
        // The engine may hold a front a while after JavaScript let go of it (a client that will not read the answer).
        if (Math.max(this.pending, (engine.stats().fronts ?? 0) - this.legacyOnFronts) >= this.maxPending) {
          this.droppedConnections.line('warn', `connection from ${peer} dropped: ${this.maxPending} connections wait for their upgrade already`);
          socket.destroy();
          return;
        }
        const plain = frontTls(socket, this.tlsContext!, (reason) => this.tlsFailed(peer, reason));
        if (typeof plain === 'string') {
          this.droppedConnections.line('warn', `TLS connection from ${peer} dropped: ${plain}`);
          return;
        }
        this.pending++;
        let waiting = true;
        const upgraded = (): void => {
          if (!waiting) return;
          waiting = false;
          this.pending--;
        };
        plain.once('close', upgraded);
        this.frontUpgraded.set(plain, () => {
          upgraded();
          this.legacyOnFronts++;
          plain.once('close', () => { this.legacyOnFronts--; });
        });
        plain.on('error', () => undefined);
        this.http.emit('connection', plain);
      });
    } else {
      // A TLS handshake that never comes is cut like a stalled request (Node's default waits 120 s).
      const tlsOpts = { ...httpOpts, handshakeTimeout: preUpgradeMs };
      this.http = opts.tls ? createTlsServer({ ...tlsOpts, ...TLS_SUITES, cert: opts.tls.cert, key: opts.tls.key }, notFound) : createServer(httpOpts, notFound);
      this.http.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Duplex & { remoteAddress?: string; remotePort?: number }) =>
        this.tlsFailed(formatPeer(socket), err.code ?? err.message));
      // What OpenSSL answers a peer on its own (KeyUpdate) must not pile up for one that never reads.
      this.http.on('secureConnection', (socket: TLSSocket) => boundTlsBacklog(socket, (bytes) =>
        this.droppedConnections.line('warn', `TLS connection from ${formatPeer(socket)} dropped: ${bytes} bytes of TLS answers it does not read`)));
    }
    // A stalled or trickling upgrade request is cut off (slowloris): checked
    // each second, so 9 s here means gone within 10 s.
    this.http.headersTimeout = preUpgradeMs;
    this.http.requestTimeout = preUpgradeMs;
    // Plain connections before their upgrade (and the js engine's sessions) are capped by Node itself.
    if (!this.tcp) this.http.maxConnections = this.maxSessions + this.maxPending;
    this.http.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) =>
      this.droppedConnections.line('warn', `connection from ${formatPeer(d)} dropped: ${this.maxSessions + this.maxPending} connections already`));
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (_err, socket: Duplex) => socket.destroy());
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new TwsError('TWS_ERR_LISTEN', `cannot listen on ${formatHostPort(this.opts.listen.host, this.opts.listen.port)}: ${err.code ?? err.message}`));
      };
      const listener = this.tcp ?? this.http;
      listener.once('error', onError);
      listener.listen({ port: this.opts.listen.port, host: this.opts.listen.host, backlog: 4096 }, () => {
        listener.off('error', onError);
        // Past the listen, an error (an accept failing for want of fds) is a line, not a crash.
        listener.on('error', (err: NodeJS.ErrnoException) => this.droppedConnections.line('warn', `listener: ${err.code ?? err.message}`));
        // The HTTP server starts its request-timeout checks when it "listens".
        if (this.tcp) this.http.emit('listening');
        const addr = listener.address() as AddressInfo;
        const engine = this.opts.engine.name;
        const tls = !this.opts.tls ? '' : this.tcp ? `, TLS in the ${engine} engine` : `, TLS: sessions use the ${engine} engine`;
        this.opts.logger.info(`listening on ${formatHostPort(addr.address, addr.port)} path ${this.path} (engine ${engine}${tls})`);
        const allow = this.opts.allow;
        if (!allow) this.opts.logger.warn('no allow-list: anyone holding the password can reach any address this server can');
        else if (allow.empty) this.opts.logger.warn('the allow-list is empty: every stream will be refused');
        else this.opts.logger.info(`allow-list: ${allow.rules.map((r) => r.text).join(', ')}; everything else is denied`);
        const weak = shortPasswordNote(this.opts.passwd, this.users?.values());
        if (weak) this.opts.logger.warn(weak);
        if (this.opts.legacy) this.opts.logger.warn(this.opts.passwd === undefined ? LEGACY_NO_PASSWORD : LEGACY_AUTH_WARNING);
        const reverse = this.opts.allowReverse;
        if (reverse && !reverse.empty) this.opts.logger.info(`reverse tunnels allowed on: ${reverse.rules.map((r) => r.text).join(', ')}`);
        const plan = this.fdPlan;
        if (plan) {
          const note = `file descriptor limit ${plan.limit}: at most ${plan.streams} streams (${plan.perSession} per session), ` +
            `${this.maxSessions} sessions and ${plan.pending} connections waiting for their upgrade`;
          if (this.maxSessions < (this.opts.maxSessions ?? 1024)) this.opts.logger.warn(`${note}; raise the limit (ulimit -n, LimitNOFILE=) for more`);
          else this.opts.logger.debug(note);
        }
        resolve(addr);
      });
    });
  }

  /** Swaps the TLS certificate and key for new handshakes; open sessions keep theirs. */
  reloadTls(tls: { cert: string | Buffer; key: string | Buffer }): void {
    if (!this.opts.tls) throw new TwsError('TWS_ERR_CONFIG', 'this server was not started with TLS');
    if (this.buildTlsContext) this.tlsContext = engineTlsContext(this.buildTlsContext, tls);
    else (this.http as import('node:https').Server).setSecureContext({ ...TLS_SUITES, cert: tls.cert, key: tls.key });
  }

  /** Debug level, and rate-limited: on a public port most failed handshakes are scanners. */
  private tlsFailed(peer: string, why: string): void {
    this.tlsFailures.line('debug', `TLS handshake from ${peer} failed: ${why}`);
  }

  /**
   * Swaps in a reloaded users file. Sessions of users that are gone or whose
   * password changed are closed (1008); the others stay, with the new rules.
   */
  reloadUsers(users: Map<string, User>): { kept: number; closed: number } {
    this.users = users;
    let kept = 0;
    let closed = 0;
    for (const [session, old] of [...this.sessionUser]) {
      const now = users.get(old.name);
      if (now && now.passwd === old.passwd) {
        this.sessionUser.set(session, now);
        kept++;
      } else {
        this.opts.logger.info(`session#${session.id}: user ${old.name} ${now ? 'has a new password' : 'was removed'}; closing it`);
        // Until it is gone, the old rules are void: nothing more is admitted on it, not even ahead.
        this.sessionUser.set(session, { ...old, allow: NOTHING, allowReverse: NOTHING });
        session.close(CloseCode.POLICY, 'credentials no longer valid');
        closed++;
      }
    }
    // Allow-lists may have changed: no engine dials ahead on the old ones (a grant follows where there still is none).
    this.ahead.revokeAll();
    this.reverse.recheck();
    return { kept, closed };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const who = peerName(req);
    const refuse = (why: string, level: 'info' | 'warn'): void => {
      this.refusedRequests.line(level, `refused upgrade from ${who}: ${peerText(why, 300)} (answered 404)`);
      respond404(socket);
    };
    if (this.stopping) return refuse('server is shutting down', 'info');
    const legacy = this.opts.legacy === true && isLegacyUpgrade(req);
    const bad = checkUpgradeRequest(req, this.path, legacy);
    if (bad) return refuse(bad, 'info');
    if (legacy) return this.onLegacyUpgrade(req, socket as Socket, head, who, refuse);
    const auth = verifyAuthHeader(req.headers[AUTH_HEADER], (user) => (user === undefined ? this.opts.passwd : this.users?.get(user)?.passwd), this.replayWindow);
    if (!auth.ok) return refuse(auth.reason, 'warn');
    // Every authenticated nonce is remembered, even for an upgrade refused below: else its header could be replayed into a session later.
    const party = this.partyOf(auth.user);
    const fresh = this.replay.accept(auth.nonce, party);
    if (!fresh.ok) return refuse(fresh.reason, 'warn');
    const full = this.sessionLimit(party);
    if (full) {
      // The peer proved it holds the password: tell it why, so its log says so.
      this.refusedRequests.line('warn', `refused upgrade from ${who}: ${full} (answered 503)`);
      return respond503(socket);
    }
    // The engine writes the 101 itself, first thing (the native engine from its own thread), then the session starts.
    const preamble = Buffer.from(upgradeResponse(req.headers['sec-websocket-key'] as string, this.features), 'latin1');
    // An HTTP(S) server's upgrade socket is a net.Socket (a TLSSocket for https, which adoptsTlsSockets covers).
    this.track(this.opts.engine.adopt(socket as Socket, head, preamble, this.sessionOpts), who, auth.user);
  }

  /** Why one more session of `party` would pass the session limit or the party's share of it; undefined when it would not. */
  private sessionLimit(party: string | undefined): string | undefined {
    const max = this.maxSessions;
    const why = max < (this.opts.maxSessions ?? 1024) ? 'the file descriptor limit' : '--max-sessions';
    const held = party === undefined ? 0 : this.parties.get(party)?.sessions ?? 0;
    if (this.sessions.size >= max) return `${max} sessions already (${why})`;
    if (party !== undefined && held >= Math.ceil(max / 2)) return `${partyName(party)} holds ${held} sessions, its share (half of ${max}, ${why})`;
    return undefined;
  }

  /**
   * A tws-rust client (--legacy, docs/legacy.md): it authenticates inside
   * the WebSocket, so the upgrade is answered first (without a subprotocol)
   * and the session counts only once its handshake proved the shared
   * password. It has no user name: with only --users there is no password
   * to check it against, and it is refused.
   */
  private onLegacyUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, who: string, refuse: (why: string, level: 'info' | 'warn') => void): void {
    const passwd = this.opts.passwd;
    if (passwd === undefined) return refuse('a tws-rust client (no user name) on a server with only --users', 'warn');
    // The handshake is not checked yet, so these refusals are the 404 any prober gets.
    const full = this.sessionLimit(this.partyOf(undefined));
    if (full) return refuse(`tws-rust client: ${full}`, 'warn');
    if (this.legacyHandshakes >= this.maxPending) return refuse(`tws-rust client: ${this.maxPending} tws-rust handshakes under way already`, 'warn');
    const preamble = Buffer.from(upgradeResponse(req.headers['sec-websocket-key'] as string, [], null), 'latin1');
    const session = this.opts.engine.adoptLegacy(socket, head, preamble, this.sessionOpts, { passwd });
    this.legacyHandshakes++;
    session.once('authenticated', () => {
      this.legacyHandshakes--;
      if (this.stopping) return session.close(CloseCode.GOING_AWAY, 'server shutting down');
      // Sessions came up while this one shook hands: the limit holds all the same.
      const over = this.sessionLimit(this.partyOf(undefined));
      if (over) {
        this.refusedRequests.line('warn', `refused tws-rust session from ${who}: ${over}`);
        session.close(CloseCode.POLICY, 'session limit');
        return;
      }
      // On a native TLS front, the connection stops counting as one before its upgrade: it is a session now.
      this.frontUpgraded.get(socket)?.();
      this.track(session, who, undefined, ` (tws-rust → ${peerText(session.target)})`);
    });
    session.once('close', (code: number, reason: string) => {
      if (session.authenticated) return;
      this.legacyHandshakes--;
      this.refusedRequests.line('warn', `refused tws-rust session from ${who}: ${peerText(reason, 200)} (closed ${code})`);
    });
  }

  /** Whose share a session of `userName` counts against: with --users its user, or '' (the shared password); without, none. */
  private partyOf(userName: string | undefined): string | undefined {
    return this.users ? userName ?? '' : undefined;
  }

  private share(party: string): { sessions: number; lookups: UserLookups } {
    let share = this.parties.get(party);
    if (!share) this.parties.set(party, (share = { sessions: 0, lookups: { n: 0, running: 0 } }));
    return share;
  }

  private track(session: EngineSession, who: string, userName: string | undefined, how = ''): void {
    const log = this.opts.logger.child(sessionName(session));
    const started = Date.now();
    this.sessions.add(session);
    const user = userName === undefined ? undefined : this.users?.get(userName);
    if (user) this.sessionUser.set(session, user);
    const party = this.partyOf(userName);
    const share = party === undefined ? undefined : this.share(party);
    if (share) share.sessions++;
    this.sessionLines.line('info', `up from ${who}${user ? ` as ${user.name}` : ''}${how}`, log);
    // Refusals a peer can provoke by the thousand are rate-limited, per session; so are open lines.
    const refusals = new RateLimitedLog(log, 'refused streams');
    // One limit for every open line of the session, the reverse listeners' included (stream-log.ts).
    const opens = openLines(session, this.opts.logger);
    const openLine = (stream: number, target: string, udp: boolean): void => opens.line('info', `stream#${stream} open → ${udp ? 'udp ' : ''}${peerText(target)}`);
    const lookups = { n: 0 };
    // A user's own rules (even an empty list) replace the server's; looked up per stream, so a reload applies at once.
    const rules = (): AllowList | undefined => this.sessionUser.get(session)?.allow ?? this.opts.allow;
    const policy = (): StreamPolicy => ({
      lookups,
      userLookups: share?.lookups,
      allow: rules(),
      current: rules,
      log,
      refusals,
      admitted: (req) => openLine(req.stream, req.target, req.kind === StreamKind.UDP),
      onDatagramDropped: () => { this.datagramsDropped++; },
    });
    const connectTimeout = this.opts.connectTimeout ?? 10_000;
    // Without an allow-list the policy admits every IP literal: the engine may dial those itself, on slots taken ahead.
    const ahead = session.grantAhead ? new AheadGrant(session, this.slots, party, connectTimeout, this.sessionOpts.maxStreams,
      () => rules() === undefined) : undefined;
    // Slots out as engines' reserves come back first: a reserve must not refuse what the budget would take.
    const reclaim = (retry: () => void): boolean => {
      const scope = this.slots?.reclaimScope(session, party);
      return scope !== undefined && this.ahead.reclaim(scope, session, party, retry);
    };
    const onOpen = (req: OpenRequest, retried: boolean): void => {
      const full = this.slots?.take(session, req.stream, party);
      if (full && !retried && reclaim(() => { if (!req.signal.aborted) onOpen(req, true); })) return;
      if (full) return refuse(req, refusals, ResetCode.TOO_MANY_STREAMS, full, 'warn');
      ahead?.streamMoved();
      if (req.kind === StreamKind.UDP) connectUdpTarget(req, connectTimeout, policy());
      else connectTarget(req, connectTimeout, policy());
    };
    session.on('open-request', (req: OpenRequest) => onOpen(req, false));
    if (ahead) {
      this.ahead.add(session, ahead);
      // What connectTarget writes for a stream it admits and lets the engine dial.
      session.on('opened-ahead', (info: { stream: number; target: string }) => {
        ahead.opened(info.stream);
        openLine(info.stream, info.target, false);
        log.debug(`stream#${info.stream} connecting ${peerText(info.target)} (in the engine, answered ahead)`);
      });
      session.on('ahead-returned', (n: number) => this.ahead.returned(ahead, n));
    }
    session.on('stream-closed', (info: { stream: number }) => {
      this.slots?.release(session, info.stream);
      ahead?.streamMoved();
    });
    const slots = this.slots;
    if (this.features.includes(FEATURE_REVERSE)) {
      this.reverse.attach(session, user?.name, slots && {
        full: () => slots.full(session, party),
        take: (id) => { slots.take(session, id, party); },
        reclaim,
      });
    }
    session.on('close', (code: number, reason: string) => {
      this.slots?.releaseSession(session);
      this.ahead.delete(session);
      refusals.flush();  // (the open lines' summary goes out by itself: openLines)
      this.sessions.delete(session);
      this.sessionUser.delete(session);
      if (share) share.sessions--;
      this.sessionLines.line(...sessionDownLine(code, reason, started, session.stats()), log);
      this.emit('session-closed', session);
    });
    ahead?.topUp();
    this.emit('session', session);
  }

  /**
   * Graceful stop: no new upgrades, GOAWAY to every session, open streams get
   * `drainMs` to finish, then sessions close with 1001 (see drainSessions);
   * resolves once they have closed.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.stopping = true;
    this.reverse.closeAll();
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    const tcpClosed = new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
    if (this.sessions.size > 0) {
      this.opts.logger.info(`shutting down: draining ${this.sessions.size} session(s) for up to ${drainMs} ms`);
    }
    await drainSessions([...this.sessions], drainMs, 'server shutting down');
    // What the rate limits held back is summed up before the process goes.
    for (const lines of [this.sessionLines, this.refusedRequests, this.droppedConnections, this.tlsFailures]) lines.flush();
    this.http.closeAllConnections();
    await closed;
    await tcpClosed;
  }
}

/** The engine's TLS context for this certificate and key, or a config error. */
function engineTlsContext(build: (cert: string | Buffer, key: string | Buffer) => object | string,
  tls: { cert: string | Buffer; key: string | Buffer }): object {
  const context = build(tls.cert, tls.key);
  if (typeof context === 'string') throw new TwsError('TWS_ERR_CONFIG', `bad TLS certificate/key: ${context}`);
  return context;
}
