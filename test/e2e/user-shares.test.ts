import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { echoServer } from '../helpers/net';
import { CLI, engines, Proc, runCli } from '../helpers/procs';
import { RawPeer, rawPeer } from '../helpers/raw-peer';
import { needs } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

/**
 * With --users, a process-wide pool (sessions, name lookups, remembered
 * nonces) is shared out: one user can hold at most half of it, so another
 * user always finds room. Without --users (one shared password) the whole
 * limit is that party's.
 */
const USERS = 'alice:\n  passwd: alice-secret\nbob:\n  passwd: bob-secret\n';
const AS = { alice: 'alice-secret', bob: 'bob-secret' } as const;

/** An upgrade as `user` (undefined: the shared password): its peer, or the HTTP status that refused it. */
async function upgrade(port: number, user?: keyof typeof AS): Promise<RawPeer | number> {
  const auth = user ? buildAuthHeader(AS[user], user) : undefined;
  return rawPeer(port, { auth }).catch((err: { status?: number }) => {
    if (err.status === undefined) throw err;
    return err.status;
  });
}

/** Upgrades as `user` until one is refused (at most `max`): the sessions it got, and the status of the refusal. */
async function takeAll(port: number, user: keyof typeof AS | undefined, max: number): Promise<{ held: RawPeer[]; refused: number | undefined }> {
  const held: RawPeer[] = [];
  for (let i = 0; i < max; i++) {
    const p = await upgrade(port, user);
    if (typeof p === 'number') return { held, refused: p };
    held.push(p);
  }
  return { held, refused: undefined };
}

for (const engine of engines()) {
  t.test(`[${engine}] one user cannot take every session: alice holds half of --max-sessions, bob still gets in`, async (t) => {
    const dir = t.testdir({ 'users.yaml': USERS });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', join(dir, 'users.yaml'), '--max-sessions', '4']);
    const peers: RawPeer[] = [];
    t.teardown(async () => { for (const p of peers) p.ws.terminate(); await server.stop('SIGKILL'); });
    const alice = await takeAll(server.port, 'alice', 4);
    peers.push(...alice.held);
    t.equal(alice.held.length, 2, 'alice gets 2 of the 4 sessions');
    t.equal(alice.refused, 503, 'her third upgrade is refused with 503');
    await server.waitLog(/refused upgrade .*user alice holds 2 sessions, its share.*\(answered 503\)/);
    const bob = await upgrade(server.port, 'bob');
    t.type(bob, 'object', `bob's upgrade is answered 101 (got ${typeof bob === 'number' ? bob : 101})`);
    if (typeof bob === 'object') peers.push(bob);
  });

  t.test(`[${engine}] without --users the one shared password keeps the whole session limit`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--max-sessions', '4']);
    const peers: RawPeer[] = [];
    t.teardown(async () => { for (const p of peers) p.ws.terminate(); await server.stop('SIGKILL'); });
    const all = await takeAll(server.port, undefined, 5);
    peers.push(...all.held);
    t.equal(all.held.length, 4, 'all 4 sessions');
    t.equal(all.refused, 503, 'the fifth is refused with 503');
  });

  t.test(`[${engine}] with --users, clients of the shared password are one more user: half the sessions`, async (t) => {
    const dir = t.testdir({ 'users.yaml': USERS });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', join(dir, 'users.yaml'), '--max-sessions', '4']);
    const peers: RawPeer[] = [];
    t.teardown(async () => { for (const p of peers) p.ws.terminate(); await server.stop('SIGKILL'); });
    const shared = await takeAll(server.port, undefined, 4);
    peers.push(...shared.held);
    t.equal(shared.held.length, 2, 'the shared password gets 2 of the 4 sessions');
    t.equal(shared.refused, 503, 'the third is refused with 503');
    await server.waitLog(/refused upgrade .*the shared password holds 2 sessions, its share/);
  });

  t.test(`[${engine}] one user cannot fill the nonce cache: alice's handshakes are refused at her share, bob's still pass`, async (t) => {
    const dir = t.testdir({ 'users.yaml': USERS });
    // Test hook: a 20-entry cache, so filling it takes 20 handshakes rather than 100,000.
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', join(dir, 'users.yaml'), '--max-sessions', '1'],
      { TWS_TEST_REPLAY_CACHE: '20' });
    const peers: RawPeer[] = [];
    t.teardown(async () => { for (const p of peers) p.ws.terminate(); await server.stop('SIGKILL'); });
    // alice holds the one session; each further upgrade of hers is answered 503, after its nonce was remembered.
    const first = await upgrade(server.port, 'alice');
    if (typeof first === 'object') peers.push(first);
    const answers: number[] = [];
    for (let i = 0; i < 60 && answers.at(-1) !== 404; i++) {
      const p = await upgrade(server.port, 'alice');
      answers.push(typeof p === 'number' ? p : 101);
      if (typeof p === 'object') peers.push(p);
    }
    t.equal(answers.filter((s) => s === 503).length, 9, 'alice has 10 nonces remembered (her half of 20), the first one included');
    t.equal(answers.at(-1), 404, 'then her handshakes are refused (404)');
    t.match(await server.waitLog(/refused upgrade .*replay cache.*\(answered 404\)/), /user alice.*share/, 'the log says it was her share');
    // bob's handshake still gets its nonce remembered: 503 (the session limit), not 404.
    t.equal(await upgrade(server.port, 'bob').then((p) => (typeof p === 'number' ? p : 101)), 503, 'bob still passes the replay check (503, not 404)');
  });
}

/**
 * A resolver that never answers: the server runs in a private mount
 * namespace whose /etc/resolv.conf names a UDP socket this test holds and
 * never reads, so every lookup of a name outside /etc/hosts hangs.
 */
const noNamespace = needs('unshare', 'mount') || (process.getuid?.() !== 0 ? 'needs root (a private mount namespace for a resolver that never answers)'
  : spawnSync('unshare', ['-m', 'true']).status !== 0 ? 'mount namespaces are not available here (unshare -m failed)' : false);

for (const engine of engines()) {
  t.test(`[${engine}] one user's hanging name lookups cannot starve another's`, { skip: noNamespace }, async (t) => {
    const ns = `127.53.${process.pid % 250}.${engine === 'js' ? 1 : 2}`;
    const blackhole = createSocket('udp4');
    await new Promise<void>((resolve) => blackhole.bind(53, ns, resolve));
    const dir = t.testdir({ 'users.yaml': USERS, 'resolv.conf': `nameserver ${ns}\noptions timeout:30 attempts:1\n` });
    const echo = await echoServer();
    const inNamespace = ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', join(dir, 'resolv.conf')];
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', join(dir, 'users.yaml'), '--log-level', 'debug',
      '--connect-timeout', '60000'], {}, CLI, inNamespace);
    const peers: RawPeer[] = [];
    t.teardown(async () => { for (const p of peers) p.ws.terminate(); await server.stop('SIGKILL'); await echo.close(); blackhole.close(); });
    // alice: 4 sessions x 16 OPENs to names nobody answers (as many as the process allows in flight).
    for (let k = 0; k < 4; k++) {
      const a = await upgrade(server.port, 'alice');
      if (typeof a === 'number') return t.fail(`alice's upgrade refused: ${a}`);
      peers.push(a);
      for (let i = 0; i < 16; i++) a.send(codec.encodeOpen(2 * i + 1, 65536, StreamKind.TCP, `n${k}x${i}.example.com:80`));
    }
    const tried = (s: Proc): number => (s.logs().match(/connecting n\d+x\d+\.example\.com:80/g) ?? []).length;
    t.ok(await waitFor(() => tried(server) === 64), `the server took up all 64 of alice's OPENs (${tried(server)})`);
    const refused = (): number => peers.flatMap((p) => p.frames).filter((f) => f.type === 'reset' && f.code === 5).length;
    await waitFor(() => refused() >= 32, 5000);
    t.equal(refused(), 32, 'half of them are refused RESET 5: alice is at her share of lookups');
    t.match(server.logs(), /refused → n\d+x\d+\.example\.com:80: user at its share of name lookups/, 'saying so');
    // bob asks for a name /etc/hosts answers: he gets a lookup slot, and a thread to run it on.
    const bob = await upgrade(server.port, 'bob');
    if (typeof bob === 'number') return t.fail(`bob's upgrade refused: ${bob}`);
    peers.push(bob);
    bob.send(codec.encodeOpen(1, 65536, StreamKind.TCP, `localhost:${echo.port}`));
    const answer = await bob.next((f: Frame) => f.stream === 1 && (f.type === 'open-ok' || f.type === 'reset'), 8000).catch(() => undefined);
    t.equal(answer?.type === 'reset' ? `reset ${answer.code} ${answer.reason}` : answer?.type ?? 'no answer in 8 s', 'open-ok', "bob's stream opens");
  });
}
