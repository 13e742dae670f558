/**
 * Leveled logger writing one line per event to stderr; child loggers add a
 * prefix. Every line is made safe at the sink: control characters (newlines
 * included), DEL, C1 controls, line/paragraph separators and bidi overrides
 * are escaped, and an overlong line is cut, so nothing a peer sends can forge
 * or flood a log line, whatever the call site forgot. Strings a peer chose
 * (targets, reasons, names) are also capped where they are interpolated, with
 * `peerText`.
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

/** Longest line (in characters, before escaping) the sink writes; the rest is cut and counted. */
export const MAX_LINE = 4096;
/** Longest peer string (in UTF-8 bytes) put into a line by `peerText`. */
export const MAX_PEER_TEXT = 256;
/**
 * Stream open/close lines a session writes per 10 s before the rest are
 * summed up: a peer can open and reset streams as fast as it can send.
 * (Refusals get 20: see RateLimitedLog's default.)
 */
export const STREAM_LINES = 200;
/**
 * Session up/down lines the server writes per 10 s, over all sessions,
 * before the rest are summed up: whoever holds a password can connect and
 * disconnect as fast as handshakes go.
 */
export const SESSION_LINES = 200;

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  enabled(level: LogLevel): boolean;
  /** A logger whose lines start with `prefix` (e.g. `session#3`). */
  child(prefix: string): Logger;
}

type Sink = (line: string) => void;

// C0 controls, DEL, C1 controls, U+2028/2029, and the bidi embeddings,
// overrides and isolates that can make a line display as something else.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(c: string): string {
  switch (c) {
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
    default: {
      const code = c.charCodeAt(0);
      return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    }
  }
}

/** `msg` as one safe line: unsafe characters escaped, cut at MAX_LINE characters. */
export function safeLine(msg: string): string {
  const cut = msg.length > MAX_LINE ? `${msg.slice(0, MAX_LINE)}…(+${msg.length - MAX_LINE} chars cut)` : msg;
  return cut.replace(UNSAFE, escapeChar);
}

/**
 * A string a peer chose, ready to interpolate into a log line: at most
 * `max` UTF-8 bytes (cut on a character boundary, marked with how much was
 * cut); the sink escapes what is left.
 */
export function peerText(s: string, max = MAX_PEER_TEXT): string {
  if (s.length <= max / 4) return s;  // fast path: cannot exceed max bytes
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length <= max) return s;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}…(+${bytes.length - end} bytes cut)`;
}

class LineLogger implements Logger {
  constructor(
    private readonly rank: number,
    private readonly prefix: string,
    private readonly sink: Sink,
  ) {}

  private write(level: LogLevel, msg: string): void {
    if (RANK[level] > this.rank) return;
    const tag = level.toUpperCase().padEnd(5);
    this.sink(`${new Date().toISOString()} ${tag} ${safeLine(this.prefix + msg)}\n`);
  }

  error(msg: string): void { this.write('error', msg); }
  warn(msg: string): void { this.write('warn', msg); }
  info(msg: string): void { this.write('info', msg); }
  debug(msg: string): void { this.write('debug', msg); }
  enabled(level: LogLevel): boolean { return RANK[level] <= this.rank; }
  child(prefix: string): Logger { return new LineLogger(this.rank, `${this.prefix}${prefix} `, this.sink); }
}

/** Bytes of log lines stderr may hold for a slow reader (a pipe to journald, say) before lines are dropped. */
export const MAX_PENDING_LOG = 1024 * 1024;

/**
 * stderr, bounded: a pipe or socket behind it is written asynchronously, and
 * when its reader falls behind, Node would buffer every line in memory.
 * Past MAX_PENDING_LOG lines are dropped and counted, and the count is
 * logged once the reader has caught up.
 */
function stderrSink(): Sink {
  let dropped = 0;
  return (line) => {
    const err = process.stderr;
    if (err.writableLength > MAX_PENDING_LOG) {
      dropped++;
      return;
    }
    if (dropped > 0) {
      err.write(`${new Date().toISOString()} WARN  … ${dropped} log lines dropped: stderr was not keeping up\n`);
      dropped = 0;
    }
    err.write(line);
  };
}

/** Creates the root logger; `sink` defaults to stderr (bounded, see stderrSink). */
export function createLogger(level: LogLevel, sink: Sink = stderrSink()): Logger {
  return new LineLogger(RANK[level], '', sink);
}

/** A logger that drops everything (library use without logging). */
export const silentLogger: Logger = createLogger('error', () => undefined);

/**
 * Caps a kind of line a peer can make us write once per request (a refused
 * stream, say): the first `burst` lines of each `windowMs` go out, the rest
 * are counted and summed up in one line when the window ends
 * ("… 1234 more <what> in the last 10.0 s"). One per session and kind.
 */
export class RateLimitedLog {
  private windowStart = 0;
  private written = 0;
  private suppressed = 0;
  private lastLevel: LogLevel = 'info';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly what: string,
    private readonly burst = 20,
    private readonly windowMs = 10_000,
  ) {}

  /** Writes `msg` (through `via`, e.g. a session's child logger, when given) unless the window's lines are spent. */
  line(level: LogLevel, msg: string, via: Logger = this.log): void {
    if (!via.enabled(level)) return;
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.written = 0;
    }
    if (this.written < this.burst) {
      this.written++;
      via[level](msg);
      return;
    }
    this.suppressed++;
    this.lastLevel = level;
    // The summary goes out when the window ends, even if the flood stopped.
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.windowStart + this.windowMs - now).unref();
  }

  /** Writes the summary of what was held back, if anything (also on session close). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed === 0) return;
    const secs = ((Date.now() - this.windowStart) / 1000).toFixed(1);
    this.log[this.lastLevel](`… ${this.suppressed} more ${this.what} in the last ${secs} s (lines held back)`);
    this.suppressed = 0;
  }
}
