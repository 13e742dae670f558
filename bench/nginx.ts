/**
 * A real nginx for the benchmark and the tests: TLS in front of tws servers,
 * using the location block of example/nginx.conf, on a free loopback port,
 * in its own prefix.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

export const hasNginx = spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0;

export interface Nginx {
  port: number;
  /** The master's and its workers' process ids (for CPU accounting). */
  pids(): number[];
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** example/nginx.conf's location block, proxying to `upstream` (host:port or an upstream name). */
export function exampleLocation(upstream: string): string {
  // From bench/ (sources, run by tap) or dist/bench/ (compiled).
  const file = [join(__dirname, '..', 'example', 'nginx.conf'), join(__dirname, '..', '..', 'example', 'nginx.conf')].find((f) => existsSync(f))!;
  const text = readFileSync(file, 'utf8');
  return text.replace('http://127.0.0.1:5202/', `http://${upstream}/`);
}

/**
 * Starts nginx serving `location` over TLS (`cert`, `key`), or over plain
 * HTTP with `plain` (the benchmark's baseline for what nginx costs without
 * TLS); `http` adds lines to the http block (e.g. an upstream).
 */
export async function startNginx(dir: string, o: { cert: string; key: string; location: string; http?: string; plain?: boolean }): Promise<Nginx> {
  const port = await freePort();
  const prefix = join(dir, `nginx-${port}`);
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  ${o.http ?? ''}
  server {
    listen 127.0.0.1:${port}${o.plain ? '' : ' ssl'};
    ssl_certificate ${o.cert};
    ssl_certificate_key ${o.key};
    # As Debian's stock nginx.conf and nginx >= 1.23.4 have it (1.22 alone leaves out 1.3).
    ssl_protocols TLSv1.2 TLSv1.3;
    ${o.location}
  }
}
`);
  const proc: ChildProcess = spawn('nginx', ['-p', prefix, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  // Up when the port accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`nginx did not start: ${err || readFileSync(join(prefix, 'logs', 'error.log'), 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const master = proc.pid!;
  return {
    port,
    pids: () => {
      const children = `/proc/${master}/task/${master}/children`;
      return [master, ...(existsSync(children) ? readFileSync(children, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [])];
    },
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');  // fast shutdown: a graceful one waits for open WebSockets
      const kill = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(kill);
    },
  };
}
