/**
 * Reverse tunnels on the client (-R, docs/protocol.md "Reverse tunnels"):
 * on each session up, a LISTEN per tunnel (when the server offers the
 * feature), retried with backoff while the server refuses; and the streams
 * the server then opens, each connected to the tunnel's own HOST:PORT. A
 * server-opened stream whose target is none of our tunnels' binds is
 * refused (RESET 1): the server cannot make us connect anywhere else. Nor
 * can it make us connect without end: a session whose server sent GOAWAY
 * gets no more (RESET 9), and all sessions together hold at most
 * `maxStreams` of them (RESET 5), however many sessions the server drains
 * and we bring up again.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { ReverseSpec } from '../config/tunnels';
import type { EngineSession, OpenRequest, StreamClosedInfo, StreamRefusedInfo } from '../engine/types';
import { dialRequest } from '../net/dial';
import { FEATURE_REVERSE, LISTEN_ERROR_NAMES, LISTEN_TOKEN_LEN, ResetCode, StreamKind } from '../protocol/constants';
import type { ControlFrame } from '../protocol/frames';
import { parseHostPort } from '../util/address';
import { Logger, peerText, RateLimitedLog, STREAM_LINES } from '../util/log';
import { Backoff } from './backoff';

/** How long the client tries to connect a reverse tunnel's target (ms). */
const CONNECT_TIMEOUT_MS = 10_000;

export interface ReverseOptions {
  logger: Logger;
  /** Base delay before a refused LISTEN is sent again (doubles per refusal, full jitter). */
  retryTimeout: number;
  /** Server-opened streams all sessions together may hold; more are refused with RESET 5. */
  maxStreams: number;
}

export class ReverseTunnels {
  /** One per process: every session of this client joins the same listeners. */
  private readonly token = randomBytes(LISTEN_TOKEN_LEN);
  private nextRequest = 1;
  private warned = false;
  /** Tunnels whose listener was confirmed once at info (later confirmations, each reconnect, are debug). */
  private readonly announced = new Set<ReverseSpec>();
  /** The last refusal of each tunnel, so a repeat is not another warning. */
  private readonly refusedWith = new Map<ReverseSpec, string>();
  /** Server-opened streams taken and not yet ended, of every session. */
  private held = 0;

  constructor(private readonly specs: readonly ReverseSpec[], private readonly opts: ReverseOptions) {}

  /** A session is up; `features` are what the server offered in its 101. */
  attach(session: EngineSession, features: readonly string[]): void {
    const log = this.opts.logger.child(`session#${session.id}`);
    const opens = new RateLimitedLog(log, 'reverse streams', STREAM_LINES);
    // This session's share of `held`: a stream leaves it when it ends, is refused (a failed dial) or is cancelled.
    const taken = new Set<number>();
    const release = (stream: number): void => {
      if (taken.delete(stream)) this.held--;
    };
    session.on('open-request', (req: OpenRequest) => this.onOpen(session, req, opens, () => {
      if (taken.has(req.stream)) return;
      taken.add(req.stream);
      this.held++;
      req.signal.addEventListener('abort', () => release(req.stream), { once: true });
    }));
    session.on('stream-closed', (info: StreamClosedInfo) => release(info.stream));
    session.on('stream-refused', (info: StreamRefusedInfo) => release(info.stream));
    session.on('close', () => {
      this.held -= taken.size;
      taken.clear();
    });
    if (!features.includes(FEATURE_REVERSE)) {
      if (!this.warned) {
        this.warned = true;
        const names = this.specs.map((s) => s.name).join(', ');
        this.opts.logger.warn(`reverse tunnels are not available on this server (it does not offer them; an older tws?): ${names} not opened; other tunnels carry on`);
      }
      return;
    }
    const asked = new Map<number, { spec: ReverseSpec; backoff: Backoff }>();
    const timers = new Set<NodeJS.Timeout>();
    const send = (spec: ReverseSpec, backoff: Backoff): void => {
      if (session.closed) return;
      const request = this.nextRequest++;
      asked.set(request, { spec, backoff });
      session.sendControl({ type: 'listen', stream: 0, request, token: this.token, bind: spec.bind });
    };
    session.on('control', (f: ControlFrame) => {
      if (f.type === 'listen') return;
      const a = asked.get(f.request);
      if (!a) return;
      const { spec, backoff } = a;
      if (f.type === 'listen-ok') {
        // Kept: a LISTEN_ERR may still come for it, when the server closes the listener (a reload no longer allows it).
        const level = this.announced.has(spec) ? 'debug' : 'info';
        this.announced.add(spec);
        this.refusedWith.delete(spec);
        log[level](`${spec.name}: the server listens on ${spec.bind} (port ${f.port}) → ${spec.remote}`);
        return;
      }
      asked.delete(f.request);
      const delay = backoff.next();
      const name = LISTEN_ERROR_NAMES[f.code] ?? `code ${f.code}`;
      const reason = peerText(f.reason, 120);
      const what = !reason ? name : reason.startsWith(name) ? reason : `${name} (${reason})`;
      // A new refusal is a warning; the same one again (each retry, each session) is debug.
      const level = this.refusedWith.get(spec) === what ? 'debug' : 'warn';
      this.refusedWith.set(spec, what);
      log[level](`${spec.name}: the server refused it: ${what}; asking again in ${delay} ms`);
      const timer = setTimeout(() => {
        timers.delete(timer);
        send(spec, backoff);
      }, delay);
      timers.add(timer);
    });
    session.on('close', () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    });
    for (const spec of this.specs) send(spec, new Backoff(this.opts.retryTimeout));
  }

  /**
   * A stream the server opened: connected to its tunnel's target (counted
   * by `admit` first), or refused when it names none of ours, comes after
   * the server's GOAWAY, or would pass `maxStreams`.
   */
  private onOpen(session: EngineSession, req: OpenRequest, opens: RateLimitedLog, admit: () => void): void {
    const spec = req.kind === StreamKind.TCP ? this.specs.find((s) => s.bind === req.target) : undefined;
    if (!spec) {
      opens.line('warn', `stream#${req.stream} refused: the server asked for ${peerText(req.target) || '(empty)'}, which is no reverse tunnel of this client`);
      req.reject(ResetCode.DENIED, 'no such reverse tunnel');
      return;
    }
    if (session.peerDraining) {
      opens.line('warn', `stream#${req.stream} refused: the server opened it after its GOAWAY`);
      req.reject(ResetCode.GOING_AWAY, 'you sent GOAWAY');
      return;
    }
    if (this.held >= this.opts.maxStreams) {
      opens.line('warn', `stream#${req.stream} refused: this client holds ${this.held} streams the server opened (--max-streams)`);
      req.reject(ResetCode.TOO_MANY_STREAMS, 'too many reverse streams');
      return;
    }
    const hp = parseHostPort(spec.remote);
    if (typeof hp === 'string') {
      req.reject(ResetCode.CONNECT_FAILED, `bad target: ${hp}`);
      return;
    }
    admit();
    req.nameTunnel(spec.name);
    opens.line('info', `stream#${req.stream} open → ${spec.remote} (${spec.name})`);
    // An IP address the engine can connect itself; a name resolves here.
    if (isIP(hp.host) !== 0 && !hp.host.includes('%') && req.dial) req.dial(hp.host, hp.port, CONNECT_TIMEOUT_MS);
    else dialRequest(req, hp, CONNECT_TIMEOUT_MS);
  }
}
