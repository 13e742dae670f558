/**
 * `tws client --stdio HOST:PORT`: no listener; one stream between this
 * process's stdin/stdout and HOST:PORT over one session, for ssh's
 * ProxyCommand and the like. EOF on stdin is a FIN; the peer's FIN closes
 * stdout; the process is done once both directions are. Nothing but payload
 * goes to stdout; why it failed is one line on stderr.
 *
 * The native engine carries the two fds itself when both are pipes or
 * sockets (epoll takes those); otherwise (a TTY, a file) and on the js engine
 * the payload passes through a Node stream pair (stdio-streams.ts).
 */
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Engine, EngineSession, StreamClosedInfo } from '../engine/types';
import { drainSessions } from '../engine/drain';
import { Logger, peerText, safeLine } from '../util/log';
import type { ConnectOptions } from './connect-options';
import { SessionSlot } from './session-slot';
import { detachStdio, pollableFd, STDIN, STDOUT, StdioDuplex } from './stdio-streams';

export interface StdioOptions {
  server: URL;
  /** The target, `host:port` as the server reaches it. */
  remote: string;
  passwd: string;
  user?: string;
  /** How long the session may take to come up, retries included (ms); default 5000. */
  timeout?: number;
  retryTimeout?: number;
  idleTimeout?: number;
  bufferBudget?: number;
  engine: Engine;
  logger: Logger;
  connect?: ConnectOptions;
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGHUP', 'SIGINT', 'SIGTERM'];

/** How the stream's log lines name it. */
export const STDIO_TUNNEL = 'stdio';

/** Whether the native engine can carry stdin/stdout by fd (the caller picks js for `auto` when not). */
export function stdioPollable(): boolean {
  return pollableFd(STDIN) && pollableFd(STDOUT);
}

/**
 * A logger for the session slot: its own retry warnings (`slot 1: cannot
 * connect …`) and its session's `down (…)` line become info lines, since a
 * stdio client says why it gave up in its one line (a lost session: `stream
 * to … failed: session lost`) and otherwise stays quiet; the session's other
 * warnings stay warnings.
 */
function quietRetries(log: Logger, quiet: (m: string) => boolean = (m) => m.startsWith('slot ')): Logger {
  return {
    error: (m) => log.error(m),
    warn: (m) => (quiet(m) ? log.info(m) : log.warn(m)),
    info: (m) => log.info(m),
    debug: (m) => log.debug(m),
    enabled: (level) => log.enabled(level),
    child: (prefix) => quietRetries(log.child(prefix), prefix.startsWith('session#') ? (m) => m.startsWith('down (') : quiet),
  };
}

/**
 * Carries stdin/stdout to `o.remote`; resolves with the exit code once the
 * stream has ended (0: FIN both ways, every byte written to stdout) or could
 * not be carried (1: the one line on stderr already written).
 */
export function runStdio(o: StdioOptions): Promise<number> {
  const timeout = o.timeout ?? 5000;
  const log = o.logger;
  const slot = new SessionSlot(1, {
    server: o.server, passwd: o.passwd, user: o.user, timeout, retryTimeout: o.retryTimeout ?? 1000,
    idleTimeout: o.idleTimeout, bufferBudget: o.bufferBudget, engine: o.engine, logger: quietRetries(log), connect: o.connect,
  });
  return new Promise<number>((resolve) => {
    let lastWhy = '';
    let session: EngineSession | undefined;
    let done = false;
    const finish = (code: number, line?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      slot.stop();
      if (line) process.stderr.write(`tws: ${safeLine(line)}\n`);
      // Close the session with its handshake, so the server logs a clean end rather than a lost connection.
      const closing = session && !session.closed ? drainSessions([session], 0, 'stdio stream done') : Promise.resolve();
      // The signal handlers stay until then: ssh's SIGHUP often comes while the close is under way.
      void closing.then(() => {
        for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
        resolve(code);
      });
    };
    // ssh sends its ProxyCommand SIGHUP as it exits, often before the
    // stream's FINs have crossed: close the session cleanly (the server then
    // logs a close, not a lost connection) and exit as a signal would.
    const onSignal = (sig: NodeJS.Signals): void => {
      log.info(`${sig}: closing the stream`);
      finish(128 + (osConstants.signals[sig] ?? 0));
    };
    for (const sig of STOP_SIGNALS) process.once(sig, onSignal);
    const deadline = setTimeout(() => {
      finish(1, `no session to ${o.server.host} within ${timeout} ms${lastWhy ? `: ${lastWhy}` : ''}`);
    }, timeout);
    slot.on('connect-failed', (why: string) => { lastWhy = why; });
    slot.once('up', (s: EngineSession) => {
      clearTimeout(deadline);
      slot.stop();  // one stream, one session: nothing to reconnect for
      session = s;
      const id = open(s, o);
      if (id === 0) return finish(1, `stream to ${o.remote} not opened (see the warning above)`);
      log.info(`session#${s.id} stream#${id} open → ${o.remote} (${STDIO_TUNNEL})`);
      s.on('stream-closed', (info: StreamClosedInfo) => {
        if (info.stream !== id) return;
        if (info.how === 'fin') return finish(0);
        finish(1, `stream to ${peerText(o.remote)} ${endedHow(info)}`);
      });
    });
    slot.start();
  });
}

/** How a stream that did not end with FIN both ways ended, for the one line. */
function endedHow(info: StreamClosedInfo): string {
  const how = peerText(info.how);
  const reset = /^peer reset: /.exec(how);
  if (!reset) return `failed: ${how}`;
  // Nothing came back: the target was never reached (stdin's first bytes go out as early data, so bytesOut may not be 0).
  return `${info.bytesIn === 0 ? 'refused' : 'reset'}: ${how.slice(reset[0].length)}`;
}

/** Opens the stream on `s`: the fds themselves where the engine takes them, else a Node stream pair. */
function open(s: EngineSession, o: StdioOptions): number {
  if (s.openFdStream && stdioPollable()) {
    const id = s.openFdStream({ read: STDIN, write: STDOUT }, o.remote, { tunnel: STDIO_TUNNEL });
    // The engine holds its own copies of the fds: ours go, so closing its stdout copy is the reader's EOF.
    if (id !== 0) detachStdio();
    return id;
  }
  let local: StdioDuplex;
  try {
    local = new StdioDuplex();
  } catch (err) {
    o.logger.warn(`stdin/stdout cannot be carried: ${safeLine(String((err as Error).message))}`);
    return 0;
  }
  return s.openStream(local as unknown as Socket, o.remote, { tunnel: STDIO_TUNNEL });
}
