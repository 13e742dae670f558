/**
 * A plain tunnel listener (-l/-r, -L) whose connections the engine accepts
 * itself (Engine.acceptLocal, the native engine): no JavaScript between a
 * new connection and its OPEN frame. This side keeps the decisions: which
 * session gets the next streams (the least loaded, granted a block of ids at
 * a time, the next block asked for before this one runs out), and the log
 * lines. A connection that finds no session waits in the engine up to
 * `timeoutMs`, as one accepted here would.
 */
import type { Server } from 'node:net';
import type { Engine, EngineSession, LocalAcceptor } from '../engine/types';
import { Logger, RateLimitedLog } from '../util/log';

/** A session picked but unable to take the grant (it drains or closes itself) is asked again after this long. */
const REGRANT_MS = 50;

export interface EngineAcceptOptions {
  remote: string;
  /** ` (-L …)` for log lines, or empty. */
  label: string;
  /** The tunnel's name for stream lines and metrics (undefined for -l/-r). */
  tunnel: string | undefined;
  /** The session new streams should go to now, if any. */
  pick(): EngineSession | undefined;
  timeoutMs: number;
  logger: Logger;
  /** The engine opened `stream` of `session` for a connection from `peer` (for its log line). */
  opened(session: EngineSession, stream: number, peer: string): void;
  /** The engine watches the listening socket now: Node's listener can stop. */
  started(): void;
  /** The engine could not watch it (`code`, e.g. ENOSPC for epoll's watch limit): JavaScript keeps accepting. */
  failed(code: string): void;
}

export class EngineAccept {
  private acceptor: LocalAcceptor | undefined;
  /** The engine has no session for new connections and waits for grant(). */
  private wanting = false;
  /** The session last granted. */
  private granted: EngineSession | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly failures: RateLimitedLog;
  /** Anyone who reaches the port while no session is up provokes one per connection. */
  private readonly late: RateLimitedLog;

  private constructor(private readonly o: EngineAcceptOptions) {
    this.failures = new RateLimitedLog(o.logger, 'accept failures');
    this.late = new RateLimitedLog(o.logger, 'connections closed with no session up');
  }

  /** Hands `server`'s connections to `engine`, or undefined when it cannot take them (the caller keeps accepting). */
  static start(engine: Engine, server: Server, o: EngineAcceptOptions): EngineAccept | undefined {
    if (!engine.acceptLocal) return undefined;
    const self = new EngineAccept(o);
    // The engine's first word is that it watches the socket (a request for a session) or why it cannot.
    let started = false;
    self.acceptor = engine.acceptLocal(server, o.remote, o.tunnel, o.timeoutMs, {
      wantsSession: (left, refused) => {
        if (!started) {
          started = true;
          o.started();
        }
        if (left === 0) {
          self.wanting = true;
          // A refused session (closing before its close reached us) is not granted again at once: that would spin.
          self.grant(refused ? self.granted : undefined);
          return;
        }
        // Running low: the next block now, where that costs nothing (ids that
        // would drain a session wait until none is left).
        const session = o.pick();
        if (session && self.acceptor?.grant(session, true)) self.granted = session;
      },
      opened: (session, stream, peer) => o.opened(session, stream, peer),
      timedOut: (peer) => self.late.line('warn', `no session to the server within ${o.timeoutMs} ms; closing connection from ${peer}${o.label}`),
      acceptFailed: (code) => {
        if (started) return self.failures.line('warn', `listener${o.label}: cannot accept a connection: ${code}; turning connections away`);
        started = true;
        self.close();
        o.failed(code);
      },
    });
    return self.acceptor ? self : undefined;
  }

  /** A session came up: the listener gets it if it was waiting for one. */
  sessionUp(): void {
    if (this.wanting) this.grant();
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.acceptor?.close();
    this.acceptor = undefined;
    this.late.flush();
  }

  /** Grants the session pick() gives, unless it is `refused` (then, as when it cannot take the grant, tries again shortly). */
  private grant(refused?: EngineSession): void {
    if (!this.acceptor || !this.wanting || this.timer) return;
    const session = this.o.pick();
    if (!session) return;  // sessionUp() grants once one is up
    if (session === refused || !this.acceptor.grant(session)) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.grant();
      }, REGRANT_MS);
      return;
    }
    this.granted = session;
    this.wanting = false;
  }
}
