/**
 * What both engines' sessions share about their streams' ids and log lines.
 * A peer can open, reset and get refused streams by the thousand, and a
 * session's ids never repeat, so each session keeps one StreamIds and one
 * StreamLog.
 */
import { MAX_U32 } from '../protocol/constants';
import { Logger, LogLevel, peerText, RateLimitedLog, STREAM_LINES } from '../util/log';
import { sessionName } from './session-close';
import { EngineSession, Role, STREAM_IDS_RESERVE, StreamClosedInfo, StreamRefusedInfo } from './types';

/** The ids this side opens streams with: odd for a client, even for a server, never reused. */
export class StreamIds {
  private next: number;

  /** `first`: SessionOptions.firstStreamId (a test hook), moved to the right parity. */
  constructor(role: Role, first?: number) {
    const parity = role === 'client' ? 1 : 0;
    const start = first ?? (role === 'client' ? 1 : 2);
    this.next = start % 2 === parity ? start : start + 1;
  }

  /** No id is left. */
  get exhausted(): boolean {
    return this.next > MAX_U32;
  }

  /** Ids left. */
  get left(): number {
    return this.exhausted ? 0 : Math.floor((MAX_U32 - this.next) / 2) + 1;
  }

  /** Ids that can be taken before `low` holds. */
  get beforeLow(): number {
    return Math.max(0, this.left - 1 - STREAM_IDS_RESERVE);
  }

  /** Fewer than STREAM_IDS_RESERVE ids are left: time to drain the session for a new one. */
  get low(): boolean {
    return (MAX_U32 - this.next) / 2 < STREAM_IDS_RESERVE;
  }

  /** The next id, or 0 when none is left. */
  take(): number {
    return this.takeBlock(1).first;
  }

  /**
   * Up to `n` ids (first, first + 2, …); first 0 when none is left. A block
   * stops where the ids run low, so it is the next one that drains the session.
   */
  takeBlock(n: number): { first: number; count: number } {
    if (this.exhausted) return { first: 0, count: 0 };
    const count = Math.max(1, Math.min(n, this.left, this.beforeLow));
    const first = this.next;
    this.next += 2 * count;
    return { first, count };
  }
}

/**
 * A session's per-stream lines: refusals held to RateLimitedLog's 20 per
 * 10 s, other stream lines to STREAM_LINES, each kind summed up past that.
 */
export class StreamLog {
  private readonly refusals: RateLimitedLog;
  private readonly lines: RateLimitedLog;

  constructor(log: Logger) {
    this.refusals = new RateLimitedLog(log, 'refused streams');
    this.lines = new RateLimitedLog(log, 'stream lines', STREAM_LINES);
  }

  /** An OPEN refused before a stream existed. */
  refused(info: StreamRefusedInfo): void {
    this.refusals.line('info', `stream#${info.stream} refused → ${peerText(info.target) || '(pinned)'}: ${info.reason}`);
  }

  /** A local connection this side could not open a stream for (whoever reaches a local port can provoke one each). */
  notOpened(why: string): void {
    this.refusals.line('warn', why);
  }

  /** A stream's one close line, with bytes each way and how long it lived (`openedAt`: ms since the epoch). */
  closed(level: LogLevel, info: StreamClosedInfo, openedAt: number | undefined): void {
    const secs = openedAt === undefined ? '0.0' : ((Date.now() - openedAt) / 1000).toFixed(1);
    const tunnel = info.tunnel ? ` (${info.tunnel})` : '';
    const line = `stream#${info.stream} closed (${info.how}) → ${peerText(info.target) || '(pinned)'}${tunnel} in=${info.bytesIn} out=${info.bytesOut} ${secs}s`;
    if (info.how.startsWith('refused')) this.refusals.line(level, line);
    else this.lines.line(level, line);
  }

  /** The session ended: the summaries of what was held back go out now. */
  flush(): void {
    this.refusals.flush();
    this.lines.flush();
  }
}

const openLinesOf = new WeakMap<EngineSession, RateLimitedLog>();

/**
 * Where the open lines of a session's streams go when something outside the
 * engine opened them (a client's listeners and UDP relays, a server's
 * reverse listeners): whoever can connect to a listener opens streams by the
 * thousand, so a session writes at most STREAM_LINES of them per 10 s and
 * sums up the rest. Lines come out prefixed with the session's name, through
 * the first `log` given for it.
 */
export function openLines(session: EngineSession, log: Logger): RateLimitedLog {
  let lines = openLinesOf.get(session);
  if (!lines) {
    const made = new RateLimitedLog(log.child(sessionName(session)), 'streams opened', STREAM_LINES);
    session.on('close', () => made.flush());
    openLinesOf.set(session, (lines = made));
  }
  return lines;
}
