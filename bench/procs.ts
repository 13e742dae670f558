/**
 * Child processes of the benchmark: tws server/client pairs started through
 * the real CLI, iperf3 servers and the echo helper. Everything started here is
 * killed on exit, whatever way the benchmark ends.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, AddressInfo } from 'node:net';
import { join } from 'node:path';

const children = new Set<ChildProcess>();
const CLI = join(__dirname, '..', 'cli', 'main.js');
const BENCH_PASSWD = 'bench-password';

function killAll(): void {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** Spawns a child and waits until its output matches `ready`; returns the match. */
export function start(cmd: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}):
  Promise<{ proc: ChildProcess; match: RegExpExecArray; logs: () => string }> {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start:\n${out}`)), 10_000);
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (out.length > 65536) out = out.slice(-65536);
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        // The same buffer keeps growing (last 64 KiB) for callers that wait for later lines.
        resolve({ proc, match: m, logs: () => out });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited (${code}):\n${out}`)); });
  });
}

export async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}

export interface Tunnel {
  server: ChildProcess;
  client: ChildProcess;
  port: number;
  /** The front's processes (nginx), if it has any. */
  frontPids(): number[];
  /** What each process has logged so far (the last 64 KiB). */
  logs: { server(): string; client(): string };
  stop(): Promise<void>;
}

/** Starts `tws server` + `tws client` on loopback with `engine`, client forwarding to `target`. */
/** Something between client and server (the tls scenario's nginx): the URL clients use, and extra client flags. */
/** `pids`, when given, lists its processes, whose CPU the benchmark reports apart from tws's. */
export type Front = (serverPort: number) => Promise<{ url: string; clientArgs: string[]; pids?(): number[]; stop(): Promise<void> }>;

export async function startTunnel(engine: string, target: string, clientArgs: string[] = [], front?: Front, serverArgs: string[] = []): Promise<Tunnel> {
  const env = { TWS_PASSWD: BENCH_PASSWD };
  // Default log level, as users run it: the per-stream log lines are part of the cost.
  const s = await start(process.execPath, [CLI, 'server', '-l', '127.0.0.1:0', '--engine', engine, '--no-udp', ...serverArgs],
    /listening on \S+:(\d+)/, env);
  const serverPort = Number(s.match[1]);
  const f = front ? await front(serverPort) : undefined;
  const url = f ? f.url : `ws://127.0.0.1:${serverPort}/`;
  const c = await start(process.execPath, [CLI, 'client', '-l', '127.0.0.1:0', '-s', url, '-r', target,
    '--engine', engine, '--no-udp', ...clientArgs, ...(f?.clientArgs ?? [])], /listening on 127\.0\.0\.1:(\d+)/, env);
  const n = sessionsOf(clientArgs);
  await waitFor(() => (c.logs().match(/up → /g) ?? []).length >= n, 10_000, 'tunnel sessions');
  return {
    server: s.proc,
    client: c.proc,
    port: Number(c.match[1]),
    frontPids: () => f?.pids?.() ?? [],
    logs: { server: s.logs, client: c.logs },
    stop: async () => {
      await Promise.all([stop(c.proc), stop(s.proc)]);
      await f?.stop();
    },
  };
}

/** How many sessions (WebSocket connections) client flags ask for: `-c N`, default 2. */
export function sessionsOf(clientArgs: string[]): number {
  return Number(/-c\s+(\d+)/.exec(clientArgs.join(' '))?.[1] ?? 2);
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A free loopback TCP port (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts the echo/router helper in its own process (see echo-server.ts); resolves with its port. */
export async function startEcho(iperfPort: number): Promise<{ proc: ChildProcess; port: number }> {
  const r = await start(process.execPath, [join(__dirname, 'echo-server.js'), String(iperfPort)], /echo on (\d+)/);
  return { proc: r.proc, port: Number(r.match[1]) };
}

export function hasIperf3(): boolean {
  return spawnSync('iperf3', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** CPU seconds (user + system) a process used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/**
 * Context switches so far, voluntary and not, summed over every thread of a
 * process (/proc/PID/task/TID/status): each is a thread that slept and was
 * woken, or was preempted. A thread that ended is no longer counted.
 */
export function contextSwitches(pid: number): number {
  let n = 0;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tids) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue;  // the thread ended meanwhile
    }
    for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
  }
  return n;
}

/** Peak resident set size of a process in MiB (VmHWM). */
export function peakRssMiB(pid: number): number {
  const path = `/proc/${pid}/status`;
  if (!existsSync(path)) return 0;
  const m = /VmHWM:\s+(\d+)/.exec(readFileSync(path, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
