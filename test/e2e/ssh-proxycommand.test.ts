/**
 * OpenSSH through `tws client --stdio` as its ProxyCommand, against a
 * throwaway sshd on loopback (its own config, host key and authorized key in
 * a temp dir): a client nobody here wrote, speaking over stdin/stdout pipes.
 */
import t from 'tap';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort, sha256 } from '../helpers/net';
import { CLI, engines, PASSWD, runCli } from '../helpers/procs';
import { fileNeeds } from '../helpers/tools';

fileNeeds(t, 'sshd', 'ssh', 'ssh-keygen');

const SSHD = '/usr/sbin/sshd';  // sshd re-executes itself: it wants an absolute path

/** Runs a command to its exit, feeding `input`; its stdout hashed, its stderr kept. */
function run(cmd: string, args: string[], input: Buffer | undefined, timeoutMs = 60_000): Promise<{ code: number | null; hash: string; bytes: number; text: string; err: string }> {
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const hash = createHash('sha256');
  let bytes = 0;
  let text = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
    if (text.length < 4096) text += d.toString();
  });
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  p.stdin.on('error', () => undefined);
  p.stdin.end(input);
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => p.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, hash: hash.digest('hex'), bytes, text, err });
  }));
}

t.test('ssh -o ProxyCommand="tws client --stdio %h:%p ..." to a loopback sshd', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tws-sshd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync('/run/sshd', { recursive: true });  // sshd's privilege separation directory
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
  execFileSync('cp', [join(dir, 'id.pub'), join(dir, 'authorized_keys')]);
  writeFileSync(join(dir, 'sshd_config'), [
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    '',
  ].join('\n'));
  const passwdFile = join(dir, 'tws-passwd');
  writeFileSync(passwdFile, `${PASSWD}\n`, { mode: 0o600 });
  const file = join(dir, 'payload');
  const payload = randomBytes(32 * 1024 * 1024);
  writeFileSync(file, payload);

  const sshdPort = await freePort();
  const sshd: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config'), '-p', String(sshdPort)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const sshdExited = new Promise<void>((resolve) => sshd.on('exit', () => resolve()));
  t.teardown(async () => {
    sshd.kill('SIGTERM');
    await sshdExited;
  });
  let sshdLog = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not start:\n${sshdLog}`)), 10_000);
    sshd.stderr!.on('data', (d: Buffer) => {
      sshdLog += d.toString();
      if (/Server listening on 127\.0\.0\.1/.test(sshdLog)) {
        clearTimeout(timer);
        resolve();
      }
    });
    sshd.on('exit', () => reject(new Error(`sshd exited:\n${sshdLog}`)));
  });

  for (const clientEngine of engines()) {
    for (const serverEngine of engines()) {
      t.test(`[client ${clientEngine}, server ${serverEngine}] a file both ways, sha256 intact`, async (t) => {
        const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', serverEngine]);
        t.teardown(() => server.stop('SIGKILL'));
        const proxy = `${process.execPath} ${CLI} client --stdio %h:%p -s ws://127.0.0.1:${server.port}/ --passwd-file ${passwdFile} --engine ${clientEngine}`;
        const ssh = (remote: string): string[] => ['-F', '/dev/null', '-o', `ProxyCommand=${proxy}`, '-o', 'BatchMode=yes',
          '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
          '-i', join(dir, 'id'), '-p', String(sshdPort), `${userInfo().username}@127.0.0.1`, remote];
        const down = await run('ssh', ssh(`cat ${file}`), undefined);
        t.equal(down.code, 0, `ssh exit 0 (stderr: ${down.err})`);
        t.equal(down.bytes, payload.length, 'the whole file came down');
        t.equal(down.hash, sha256(payload), 'sha256 intact (down)');
        const up = await run('ssh', ssh('sha256sum'), payload);
        t.equal(up.code, 0, `ssh exit 0 (stderr: ${up.err})`);
        t.equal(up.text.split(' ')[0], sha256(payload), 'sha256 intact (up, as the remote side hashed it)');
        t.equal(up.err, '', 'nothing on stderr: the ProxyCommand is quiet');
        // ssh sends its ProxyCommand SIGHUP as it exits, maybe before the FINs crossed: whichever way each
        // stream ended, its session closed with a handshake, never as a lost connection.
        await server.waitLog(/(?:[\s\S]*?session#\d+ down){2}/);
        t.notMatch(server.logs(), /1006|session lost/, 'every session closed cleanly');
      });
    }
  }
});
