import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, echoServer, howItEnds, roundTrip, sha256 } from '../helpers/net';
import { engines, PASSWD, Proc, runCli } from '../helpers/procs';

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

t.test('a bad users file is one clear error naming file, user and key', async (t) => {
  const dir = t.testdir({ 'u.yaml': 'alice:\n  passwd: x\n  alow: ["*:22"]\n', 'v.yaml': 'bob:\n  allow: ["*:22"]\n' });
  for (const [f, re] of [['u.yaml', /user "alice": unknown key "alow"/], ['v.yaml', /user "bob": give exactly one of passwd and passwd_file/]] as const) {
    const r = await runCli(['server', '-l', '127.0.0.1:0', '--users', join(dir, f)]).then(async (p) => { await p.stop('SIGKILL'); return 'started'; }, (e: Error) => e.message);
    t.match(r, re);
  }
});
