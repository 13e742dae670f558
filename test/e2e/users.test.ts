import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, echoServer, howItEnds, roundTrip, sha256 } from '../helpers/net';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { engines, PASSWD, Proc, runCli } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';

function usersYaml(alicePass: string, echoPort: number, bobFile: string): string {
  return `alice:\n  passwd: ${alicePass}\n  allow: ["127.0.0.1:${echoPort}"]\nbob:\n  passwd_file: ${bobFile}\n`;
}

for (const engine of engines()) {
  t.test(`[${engine}] --users: per-user passwords and allow-lists; SIGHUP reloads, keeping sessions that stay valid`, async (t) => {
    const echo = await echoServer();
    const dir = t.testdir({ 'bob.passwd': 'bob-secret\n' });
    const file = join(dir, 'users.yaml');
    writeFileSync(file, usersYaml('alice-secret', echo.port, join(dir, 'bob.passwd')));
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', file, '--allow', `127.0.0.1:${echo.port}`]);
    const url = `ws://127.0.0.1:${server.port}/`;
    const procs: Proc[] = [server];
    t.teardown(async () => { await Promise.all(procs.map((p) => p.stop('SIGKILL'))); await echo.close(); });
    const client = async (target: string, ...auth: string[]): Promise<Proc> => {
      const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', url, '-r', target, '--engine', engine, '-c', '1', '--retry-timeout', '100', ...auth]);
      procs.push(c);
      return c;
    };
    t.match(await server.waitLog(/ WARN .*a password shorter than 16 characters.*/),
      /users (alice, bob|bob, alice) have a password shorter than 16 characters: whoever sees a handshake over plain ws:\/\/ can test guesses offline/,
      'the server warns about passwords short enough to guess');
    t.notMatch(server.logs(), /alice-secret|bob-secret/, 'without saying them');
    const alice = await client(echo.addr, '--user', 'alice', '-p', 'alice-secret');
    const bob = await client(echo.addr, '--user', 'bob', '-p', 'bob-secret');
    const shared = await client(echo.addr);  // no user: the shared password (TWS_PASSWD)
    await Promise.all([alice, bob, shared].map((c) => c.waitLog(/up → /)));
    await server.waitLog(/up from \S+ as alice/);
    await server.waitLog(/up from \S+ as bob/);
    const data = randomBytes(200_000);
    for (const c of [alice, bob, shared]) t.equal(sha256(await roundTrip(c.port, data)), sha256(data), 'data intact');

    const wrong = await client(echo.addr, '--user', 'alice', '-p', 'not-her-password');
    t.match(await wrong.waitLog(/cannot connect .*/), /HTTP 404/, 'a wrong password gets the same 404 as anything else');
    await server.waitLog(/refused upgrade .*bad mac/);
    const stranger = await client(echo.addr, '--user', 'mallory', '-p', PASSWD);
    await stranger.waitLog(/HTTP 404/);
    await server.waitLog(/refused upgrade .*unknown user "mallory"/);

    // alice's own rule allows only the echo port: another target is denied for her.
    const aliceElsewhere = await client('127.0.0.1:1', '--user', 'alice', '-p', 'alice-secret');
    await aliceElsewhere.waitLog(/up → /);
    t.equal((await howItEnds(connect(aliceElsewhere.port, '127.0.0.1'))).data.length, 0);
    await server.waitLog(/denied → 127\.0\.0\.1:1: not allowed/);

    // New password for alice; bob unchanged. Reload: alice's sessions close, bob's stay.
    writeFileSync(file, usersYaml('alice-new-secret', echo.port, join(dir, 'bob.passwd')));
    server.proc.kill('SIGHUP');
    t.match(await server.waitLog(/SIGHUP: reloaded users from .*/), /: 1 session\(s\) kept, 2 closed/, "users' sessions: bob's kept, alice's two closed");
    await alice.waitLog(/down \(1008/);
    t.notMatch(bob.logs(), /down \(/, "bob's session was kept");
    t.equal(sha256(await roundTrip(bob.port, data)), sha256(data), 'bob still tunnels');
    t.notMatch(server.logs() + alice.logs() + bob.logs(), /alice-secret|alice-new-secret|bob-secret/, 'no password in any log');
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] allow: [] denies every target; no allow: means the server's rules; a user's own rules replace them`, async (t) => {
    const [one, two] = [await echoServer(), await echoServer()];
    const dir = t.testdir({
      'users.yaml': `nobody:\n  passwd: n-secret\n  allow: []\nplain:\n  passwd: p-secret\nown:\n  passwd: o-secret\n  allow: ["127.0.0.1:${two.port}"]\n`,
    });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', join(dir, 'users.yaml'), '--allow', `127.0.0.1:${one.port}`]);
    t.teardown(async () => { await server.stop('SIGKILL'); await one.close(); await two.close(); });
    const answer = async (user: string, pass: string, targets: [string, number][]): Promise<string[]> => {
      const p = await rawPeer(server.port, { auth: buildAuthHeader(pass, user) });
      const out: string[] = [];
      let id = 1;
      for (const [target, kind] of targets) {
        p.send(codec.encodeOpen(id, 65536, kind as 1 | 2, target));
        const f = await p.next((x: Frame) => x.stream === id && (x.type === 'open-ok' || x.type === 'reset'));
        out.push(f.type === 'reset' ? `reset ${(f as { code: number }).code}` : 'ok');
        id += 2;
      }
      p.ws.close();
      return out;
    };
    const everywhere: [string, number][] = [[one.addr, StreamKind.TCP], [two.addr, StreamKind.TCP], ['127.0.0.1:1', StreamKind.TCP],
      ['localhost:22', StreamKind.TCP], [one.addr, StreamKind.UDP]];
    t.same(await answer('nobody', 'n-secret', everywhere), ['reset 1', 'reset 1', 'reset 1', 'reset 1', 'reset 1'],
      'the user with allow: [] is refused everywhere (RESET 1), even where --allow would let others through');
    t.match(await server.waitLog(/denied → \S+: the allow-list is empty.*/), /no target is allowed/, 'with the usual log line');
    t.same(await answer('plain', 'p-secret', [[one.addr, StreamKind.TCP], [two.addr, StreamKind.TCP]]), ['ok', 'reset 1'],
      'a user without allow: gets the server\'s --allow');
    t.same(await answer('own', 'o-secret', [[two.addr, StreamKind.TCP], [one.addr, StreamKind.TCP]]), ['ok', 'reset 1'],
      'a user\'s own rules replace the server\'s: theirs only, nothing wider');
  });
}

t.test('a server with an explicit empty allow-list (YAML allow: []) refuses every stream, and says so at start', async (t) => {
  const echo = await echoServer();
  const dir = t.testdir({ 'server.yaml': `listen: 127.0.0.1:0\nallow: []\n` });
  const server = await runCli(['server', '--config', join(dir, 'server.yaml')]);
  t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
  await server.waitLog(/the allow-list is empty: every stream will be refused/);
  const p = await rawPeer(server.port);
  p.send(codec.encodeOpen(1, 65536, StreamKind.TCP, echo.addr));
  t.equal((await p.next((f: Frame) => f.stream === 1 && f.type === 'reset') as { code: number }).code, 1);
  p.ws.close();
});

t.test('a bad users file is one clear error naming file, user and key', async (t) => {
  const dir = t.testdir({ 'u.yaml': 'alice:\n  passwd: x\n  alow: ["*:22"]\n', 'v.yaml': 'bob:\n  allow: ["*:22"]\n' });
  for (const [f, re] of [['u.yaml', /user "alice": unknown key "alow"/], ['v.yaml', /user "bob": give exactly one of passwd and passwd_file/]] as const) {
    const r = await runCli(['server', '-l', '127.0.0.1:0', '--users', join(dir, f)]).then(async (p) => { await p.stop('SIGKILL'); return 'started'; }, (e: Error) => e.message);
    t.match(r, re);
  }
});
