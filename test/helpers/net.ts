/** Real TCP servers and clients for tests, all on loopback. */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { AddressInfo, connect, createServer, Server, Socket } from 'node:net';

export interface TcpServer {
  server: Server;
  port: number;
  addr: string;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 with `onConn`; close() also destroys open sockets. */
export function tcpServer(onConn: (s: Socket) => void): Promise<TcpServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        server,
        port,
        addr: `127.0.0.1:${port}`,
        sockets,
        close: () => new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
      });
    });
  });
}

/** The kernel's ephemeral port range: where listen(0) and every outgoing connection take their ports. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high && low <= high) return [low, high];
  } catch { /* not Linux: the usual range */ }
  return [32768, 60999];
}

/** Ports freePort() handed out in this process. */
const given = new Set<number>();

/**
 * A loopback port nothing listens on now, for a process that must be told a
 * fixed port. It is taken below the ephemeral range, so no listen(0) and no
 * outgoing connection of a test running beside this one can take it before
 * the caller binds it (ports from listen(0) can: CI saw it).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [low] = ephemeralRange();
  const from = low > 12_000 ? 10_000 : 1024;
  const to = low > 12_000 ? low - 1 : 9_999;
  for (let tries = 0; tries < 50; tries++) {
    const port = from + Math.floor(Math.random() * (to - from + 1));
    // Never the same port twice in one test process (17 picks at random collide about once in 160 runs).
    if (given.has(port)) continue;
    const bound = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, host, () => s.close(() => resolve(true)));
    });
    if (bound) {
      given.add(port);
      return port;
    }
  }
  throw new Error(`no free port on ${host} between ${from} and ${to} in 50 tries`);
}

/**
 * The most one direction of a loopback TCP connection can hold in the
 * kernel: the receiver's buffer (autotuned up to tcp_rmem's maximum) and the
 * sender's (tcp_wmem's). Machines differ (4 to 32 MiB and more for the
 * first): a test that a peer stops being read must send more than this
 * beyond the point where reading stops. 10 MiB where /proc says nothing.
 */
export function loopbackBuffering(): number {
  const max = (name: string): number => {
    try {
      return Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]) || 0;
    } catch {
      return 0;
    }
  };
  const total = max('tcp_rmem') + max('tcp_wmem');
  return total > 0 ? total : 10 * 2 ** 20;
}

/**
 * A loopback address where connecting never completes: a listener in a
 * stopped child process (so it never accepts) whose one-deep backlog is
 * already full, so the kernel drops further SYNs. close() kills it.
 */
export async function hangingTarget(): Promise<{ addr: string; close(): Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e',
    "const s = require('net').createServer(() => {}); s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => console.log(s.address().port));"],
  { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  child.kill('SIGSTOP');
  const fillers: Socket[] = [];
  const connected = (s: Socket): Promise<boolean> => new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 300);
    s.once('connect', () => { clearTimeout(timer); resolve(true); });
    s.once('error', () => { clearTimeout(timer); resolve(false); });
  });
  // Fill the queue until a connect hangs (two on Linux for backlog 1).
  for (let i = 0; i < 8; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    fillers.push(s);
    if (!(await connected(s))) break;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    addr: `127.0.0.1:${port}`,
    close: async () => {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** An echo server that half-closes after echoing everything. */
export function echoServer(): Promise<TcpServer> {
  return tcpServer((s) => s.pipe(s));
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Connects, sends `data`, half-closes, and collects everything until the peer ends. */
export function roundTrip(port: number, data: Buffer, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error('roundTrip timed out')); }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => { clearTimeout(timer); s.end(); resolve(Buffer.concat(chunks)); });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('close', () => { clearTimeout(timer); });
    s.end(data);
  });
}

/** Resolves with how the socket ended: 'end' (FIN), 'reset' (ECONNRESET) or 'close'. */
export function howItEnds(s: Socket, timeoutMs = 15_000): Promise<{ how: string; data: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let how = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error('socket did not end')); }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => { how ||= 'end'; s.destroy(); });
    s.on('error', (e: NodeJS.ErrnoException) => { how ||= e.code === 'ECONNRESET' ? 'reset' : e.code ?? 'error'; });
    s.on('close', () => { clearTimeout(timer); resolve({ how: how || 'close', data: Buffer.concat(chunks) }); });
  });
}

/** Reads RSS of a process in MiB from /proc. */
export function rssMiB(pid: number): number {
  const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8') as string;
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/**
 * How many TCP sockets process `pid` holds open (as fds) to loopback port
 * `port`, whatever their state (a FIN-WAIT-2 one too), from /proc (Linux):
 * what `ss -tnp` would list for it.
 */
export function socketsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch { /* closed since it was listed */ }
  }
  let n = 0;
  for (const table of ['tcp', 'tcp6']) {
    // Fields: sl, local address:port, remote address:port (hex), state, queues, timers, retransmits, uid, timeout, inode.
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && parseInt(f[2]!.split(':')[1]!, 16) === port && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { connect };
