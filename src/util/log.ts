/** Leveled logger writing one line per event to stderr; child loggers add a prefix. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

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

class LineLogger implements Logger {
  constructor(
    private readonly rank: number,
    private readonly prefix: string,
    private readonly sink: Sink,
  ) {}

  private write(level: LogLevel, msg: string): void {
    if (RANK[level] > this.rank) return;
    const tag = level.toUpperCase().padEnd(5);
    this.sink(`${new Date().toISOString()} ${tag} ${this.prefix}${msg}\n`);
  }

  error(msg: string): void { this.write('error', msg); }
  warn(msg: string): void { this.write('warn', msg); }
  info(msg: string): void { this.write('info', msg); }
  debug(msg: string): void { this.write('debug', msg); }
  enabled(level: LogLevel): boolean { return RANK[level] <= this.rank; }
  child(prefix: string): Logger { return new LineLogger(this.rank, `${this.prefix}${prefix} `, this.sink); }
}

/** Creates the root logger; `sink` defaults to stderr. */
export function createLogger(level: LogLevel, sink: Sink = (l) => process.stderr.write(l)): Logger {
  return new LineLogger(RANK[level], '', sink);
}

/** A logger that drops everything (library use without logging). */
export const silentLogger: Logger = createLogger('error', () => undefined);
