import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { engines, Proc, runCli } from '../helpers/procs';
import { needs } from '../helpers/tools';

const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');

/** The indented command lines of one README section, in order. */
function commands(heading: string): string[] {
  const start = readme.indexOf(`\n## ${heading}\n`);
  const section = readme.slice(start + 1, readme.indexOf('\n## ', start + 1));
  return section.split('\n').filter((l) => l.startsWith('    ')).map((l) => l.trim());
}

for (const engine of engines()) {
  t.test(`[${engine}] the quick start works exactly as written (your_domain = localhost, ports of our choosing, an echo server as the ssh target)`,
    { skip: needs('openssl') }, async (t) => {
      const home = t.testdir({});
      const echo = await echoServer();
      const procs: Proc[] = [];
      t.teardown(async () => { for (const p of procs.reverse()) await p.stop('SIGKILL'); await echo.close(); });
      // As on a user's machine: no TWS_PASSWD (the test helpers' would clash with --passwd-file); the engine by TWS_ENGINE.
      const env = { HOME: home, TWS_PASSWD: '', TWS_ENGINE: engine };
      // The only changes to the commands: a name this machine has, a target that answers, and each
      // `-l` on a free loopback port, which later commands then use in place of the README's port.
      const ports = new Map<string, number>();
      const adapt = (l: string): string => [...ports].reduce((x, [from, to]) => x.replace(new RegExp(`\\b${from}\\b`, 'g'), String(to)),
        l.replace(/your_domain/g, 'localhost').replace(/127\.0\.0\.1:22\b/g, echo.addr));
      const lines = commands('Quick start');
      t.ok(lines.some((l) => l.startsWith('tws server')) && lines.some((l) => l.startsWith('tws client')), 'a server and a client command');
      let shell: string[] = [];
      const runShell = (): void => {
        if (shell.length === 0) return;
        const r = spawnSync('bash', ['-euc', shell.join('\n')], { cwd: home, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
        t.equal(r.status, 0, `${shell.join(' ; ')}${r.status === 0 ? '' : `\n${r.stderr}`}`);
        shell = [];
      };
      let sshPort = '';
      for (const readmeLine of lines) {
        const line = adapt(readmeLine);  // now: a -l started above has its port
        if (line.startsWith('ssh ')) {
          sshPort = /-p (\d+)/.exec(line)?.[1] ?? '';
        } else if (!line.startsWith('tws ')) {
          // Run as root here: a line that writes to system directories fails instead of running.
          if (!t.notMatch(line, /(^|[\s>])\/(etc|usr|var|opt|root|home|srv)\//, `stays in ~: ${line}`)) break;
          shell.push(line);
        } else {
          runShell();
          const listen = /^(-l|--listen)$/;
          const args = line.split(/\s+/).slice(1).map((a, i, all) => (listen.test(all[i - 1] ?? '') ? '127.0.0.1:0' : a.replace(/^~\//, `${home}/`)));
          const p = await runCli(args, env);
          procs.push(p);
          ports.set(/\s(?:-l|--listen)\s+\S+:(\d+)/.exec(line)![1]!, p.port);
          t.match(p.logs(), new RegExp(`listening on .*\\(engine ${engine}\\b`), `tws ${args[0]} runs`);
          if (args[0] === 'client') await p.waitLog(/up → wss:/);
        }
      }
      const client = procs.at(-1)!;
      t.equal(sshPort, String(client.port), "ssh connects to the client's -l port");
      const data = randomBytes(1_000_000);
      t.equal(sha256(await roundTrip(client.port, data)), sha256(data), 'data crosses the tunnel intact');
    });
}
