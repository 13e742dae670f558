/**
 * Spawns the real `tws` CLI (dist/cli/main.js) and waits for its
 * "listening on" line. Every process started here is killed by its stop().
 */
import { ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
export const PASSWD = 'test-secret-DO-NOT-LOG';

/** Engines the e2e suite runs against (TWS_TEST_ENGINES=js,native). */
export function engines(): string[] {
  return (process.env.TWS_TEST_ENGINES ?? 'js,native').split(',').filter(Boolean);
}

export interface Proc {
  proc: ChildProcess;
  port: number;
  /** Everything the process wrote to stderr so far. */
  logs(): string;
  /** Resolves when a log line matches. */
  waitLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal and waits for exit; SIGKILL after 5 s. Returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the CLI (`cli`: another tws entry point, e.g. an installed
 * package's). `prefix` runs it through another command, e.g.
 * `['ip', 'netns', 'exec', NAME]` (which execs, so the pid stays node's).
 * `o.node`: another Node (an arm64 one under qemu-user, say), which may
 * need `o.readyMs` to start listening.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, cli = CLI, prefix: string[] = [],
  o: { node?: string; readyMs?: number } = {}): Promise<Proc> {
  const [cmd, ...pre] = [...prefix, o.node ?? process.execPath];
  const proc = spawn(cmd!, [...pre, cli, ...args], {
    env: { ...process.env, TWS_PASSWD: PASSWD, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onText = (chunk: Buffer): void => {
    out += chunk.toString();
    for (const w of [...waiters]) {
      const m = w.re.exec(out);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m[0]);
      }
    }
  };
  proc.stderr!.on('data', onText);
  proc.stdout!.on('data', onText);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const waitLog = (re: RegExp, timeoutMs = 10_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const m = re.exec(out);
      if (m) return resolve(m[0]);
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in logs:\n${out}`)), timeoutMs);
      waiters.push({ re, resolve: (l) => { clearTimeout(timer); resolve(l); } });
      void exited.then((code) => { clearTimeout(timer); reject(new Error(`process exited (${code}) before ${re}:\n${out}`)); });
    });
  const p: Proc = {
    proc,
    port: 0,
    logs: () => out,
    waitLog,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
  return waitLog(/listening on \S+:(\d+)/, o.readyMs).then((line) => {
    p.port = Number(/:(\d+)$/.exec(line)![1]);  // the last colon: [::1]:port has more
    return p;
  }, async (err) => {
    await p.stop('SIGKILL');
    throw err;
  });
}

/** Runs the CLI to its exit (killed after 10 s); resolves with its exit code and stderr. */
export function runToExit(args: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, TWS_PASSWD: PASSWD }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, err }); });
  });
}

export interface Tunnel {
  server: Proc;
  client: Proc;
  /** Local port of the client: connect here to reach `target`. */
  port: number;
  stop(): Promise<void>;
}

/** Starts `tws server` and `tws client` → `target` on loopback. */
export async function startTunnel(opts: {
  engine: string;
  target: string;
  serverArgs?: string[];
  clientArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Wait until all of the client's sessions are up (default true). */
  waitSessions?: boolean;
}): Promise<Tunnel> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', opts.engine, ...(opts.serverArgs ?? [])], opts.env);
  let client: Proc;
  try {
    client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', opts.target,
      '--engine', opts.engine, ...(opts.clientArgs ?? [])], opts.env);
  } catch (err) {
    await server.stop('SIGKILL');
    throw err;
  }
  const want = Number(/-c\s+(\d+)/.exec((opts.clientArgs ?? []).join(' '))?.[1] ?? 2);
  if (opts.waitSessions !== false) {
    await client.waitLog(new RegExp('(?:[\\s\\S]*?up → ){' + want + '}')).catch(async (err) => {
      await Promise.all([client.stop('SIGKILL'), server.stop('SIGKILL')]);
      throw err;
    });
  }
  return {
    server,
    client,
    port: client.port,
    stop: async () => {
      await Promise.all([client.stop('SIGKILL'), server.stop('SIGKILL')]);
    },
  };
}

/** How many of the process's threads are native I/O threads (named tws-io). */
export function ioThreads(pid: number, name = 'tws-io'): number {
  return readdirSync(`/proc/${pid}/task`).filter((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === name;
    } catch {
      return false;
    }
  }).length;
}
