/**
 * A stream whose target is a name is decided once the name resolves. If a
 * reload (SIGHUP) changes the rules meanwhile, the decision is the new
 * rules', never the ones read when the OPEN came. The server runs in a
 * private mount namespace whose /etc/resolv.conf names a DNS server this
 * test plays on loopback: it answers only when told, so the reload lands
 * while the lookup waits.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createSocket, RemoteInfo } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { tcpServer } from '../helpers/net';
import { CLI, engines, runCli } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';
import { needs } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const noNamespace = needs('unshare', 'mount') || (process.getuid?.() !== 0 ? 'needs root (a private mount namespace for a resolver of its own)'
  : spawnSync('unshare', ['-m', 'true']).status !== 0 ? 'mount namespaces are not available here (unshare -m failed)' : false);

/** The question of a DNS query (name, type), or undefined if it is not one. */
function question(q: Buffer): { end: number; name: string; type: number } | undefined {
  const labels: string[] = [];
  let i = 12;
  while (i < q.length && q[i] !== 0) {
    labels.push(q.subarray(i + 1, i + 1 + q[i]!).toString('latin1'));
    i += 1 + q[i]!;
  }
  if (i + 5 > q.length) return undefined;
  return { end: i + 5, name: labels.join('.').toLowerCase(), type: q.readUInt16BE(i + 1) };
}

/** The answer to query `q`: A 127.0.0.1 for an A question, no records for any other. */
function answer(q: Buffer): Buffer | undefined {
  const ask = question(q);
  if (!ask) return undefined;
  const head = Buffer.alloc(12);
  q.copy(head, 0, 0, 2);  // the query's id
  head.writeUInt16BE(0x8180, 2);  // a response, recursion desired and available, no error
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(ask.type === 1 ? 1 : 0, 6);
  const a = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
  return Buffer.concat([head, q.subarray(12, ask.end), ...(ask.type === 1 ? [a] : [])]);
}

for (const engine of engines()) {
  t.test(`[${engine}] a reload while a target's name resolves: the stream is decided by the new rules`, { skip: noNamespace }, async (t) => {
    const target = await tcpServer(() => undefined);
    const ns = `127.54.${process.pid % 250}.${engine === 'js' ? 1 : 2}`;
    const dns = createSocket('udp4');
    const held: { q: Buffer; from: RemoteInfo }[] = [];
    dns.on('message', (q, from) => held.push({ q, from }));
    await new Promise<void>((resolve) => dns.bind(53, ns, resolve));
    const before = `alice:\n  passwd: alice-secret\n  allow: ["*:${target.port}"]\n`;
    const after = `alice:\n  passwd: alice-secret\n  allow: ["127.0.0.2:${target.port}"]\n`;
    const dir = t.testdir({ 'users.yaml': before, 'resolv.conf': `nameserver ${ns}\noptions timeout:30 attempts:1\n` });
    const inNamespace = ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', join(dir, 'resolv.conf')];
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', join(dir, 'users.yaml'), '--log-level', 'debug'],
      {}, CLI, inNamespace);
    const alice = await rawPeer(server.port, { auth: buildAuthHeader('alice-secret', 'alice') });
    t.teardown(async () => { alice.ws.terminate(); await server.stop('SIGKILL'); await target.close(); dns.close(); });

    alice.send(codec.encodeOpen(1, 65536, StreamKind.TCP, `db.slow.test:${target.port}`));
    t.ok(await waitFor(() => held.some((h) => question(h.q)?.name === 'db.slow.test')), 'the server asks our DNS server for the name');
    writeFileSync(join(dir, 'users.yaml'), after);
    server.proc.kill('SIGHUP');
    await server.waitLog(/reloaded users from .*: 1 session\(s\) kept/);
    // Now the answers, as many as were asked (A and AAAA).
    for (const h of held.splice(0)) {
      const a = answer(h.q);
      if (a) dns.send(a, h.from.port, h.from.address);
    }
    dns.on('message', (q, from) => { const a = answer(q); if (a) dns.send(a, from.port, from.address); });
    const got = await alice.next((f: Frame) => f.stream === 1 && (f.type === 'open-ok' || f.type === 'reset'), 15_000).catch(() => undefined);
    t.equal(got?.type === 'reset' ? `reset ${got.code}` : got?.type ?? 'no answer', `reset ${1}`, 'refused with RESET 1: the new rules do not allow 127.0.0.1');
    t.equal(target.sockets.size, 0, 'and the target saw no connection');
    t.match(server.logs(), /stream#1 denied → db\.slow\.test:\d+/, 'the denial is logged');
  });
}
