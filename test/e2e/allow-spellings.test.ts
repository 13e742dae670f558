/**
 * Every spelling of an address a peer can put in an OPEN is checked as the
 * address it reaches, and exactly that address is connected: IPv4-mapped
 * IPv6 in any form, zone ids, short/octal/hex IPv4, the unspecified address.
 */
import t from 'tap';
import { networkInterfaces } from 'node:os';
import { AddressInfo, createServer } from 'node:net';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { RawPeer, rawPeer } from '../helpers/raw-peer';
import { waitFor } from '../helpers/wait';

const lastId = new WeakMap<RawPeer, number>();

/** Sends one OPEN per target (fresh odd stream ids) and collects each answer: 'ok' or `reset CODE: reason`. */
async function answers(p: RawPeer, targets: string[], kind: 1 | 2 = StreamKind.TCP): Promise<Map<string, string>> {
  const base = (lastId.get(p) ?? -1) + 2;
  lastId.set(p, base + 2 * (targets.length - 1));
  targets.forEach((target, i) => p.send(codec.encodeOpen(base + 2 * i, 65536, kind, target)));
  const out = new Map<string, string>();
  await Promise.all(targets.map(async (target, i) => {
    const id = base + 2 * i;
    const f = await p.next((x: Frame) => x.stream === id && (x.type === 'open-ok' || x.type === 'reset'));
    out.set(target, f.type === 'reset' ? `reset ${f.code}: ${f.reason}` : 'ok');
  }));
  return out;
}

/** A link-local IPv6 address of this host and its interface, if it has one. */
function linkLocal(): { address: string; zone: string } | undefined {
  for (const [zone, addrs] of Object.entries(networkInterfaces())) {
    const a = addrs?.find((x) => x.family === 'IPv6' && /^fe[89ab]/i.test(x.address));
    if (a) return { address: a.address, zone };
  }
  return undefined;
}

for (const engine of engines()) {
  t.test(`[${engine}] an IPv6 rule never lets 127.0.0.1 through, however it is spelled; zones, IPv4-compatible and the unspecified address are refused`, async (t) => {
    const target = await tcpServer(() => undefined);
    // [::/0] allows every IPv6 address; 0.0.0.0/8 no usable IPv4 one (0.0.0.0 itself would be connected as loopback).
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--connect-timeout', '2000',
      '--allow', '[::/0]:*', '--allow', '0.0.0.0/8:*']);
    const p = await rawPeer(server.port);
    t.teardown(async () => { p.ws.close(); await server.stop('SIGKILL'); await target.close(); });
    const P = target.port;
    const denied = [`127.0.0.1:${P}`, `[::ffff:127.0.0.1]:${P}`, `[::ffff:7f00:1]:${P}`, `[::FFFF:7F00:0001]:${P}`,
      `[0:0:0:0:0:ffff:7f00:1]:${P}`, `[0000:0000:0000:0000:0000:FFFF:127.0.0.1]:${P}`,
      `127.1:${P}`, `127.0.1:${P}`, `0x7f.1:${P}`, `0X7F000001:${P}`, `0177.0.0.1:${P}`, `2130706433:${P}`, `127.000.0.01:${P}`];
    const bad = [`[::ffff:127.0.0.1%lo]:${P}`, `[::ffff:7f00:1%1]:${P}`, `[::1%lo]:${P}`,
      `[::127.0.0.1]:${P}`, `[::7f00:1]:${P}`, `127.0.0.1.:${P}`, `08.1:${P}`, `256.0.0.1:${P}`,
      `0.0.0.0:${P}`, `0:${P}`, `[::ffff:0.0.0.0]:${P}`, `[::]:${P}`];
    const got = await answers(p, [...denied, ...bad]);
    for (const d of denied) t.match(got.get(d), /^reset 1: target not allowed$/, `${d}: denied (checked as 127.0.0.1)`);
    for (const b of bad) t.match(got.get(b), /^reset 2: bad target/, `${b}: refused as a bad target`);
    const udp = await answers(p, [`[::ffff:127.0.0.1%lo]:${P}`, `[::ffff:7f00:1]:${P}`], StreamKind.UDP);
    t.match(udp.get(`[::ffff:127.0.0.1%lo]:${P}`), /^reset 2: bad target/, 'udp: a zone on a mapped address is a bad target');
    t.match(udp.get(`[::ffff:7f00:1]:${P}`), /^reset 1: /, 'udp: a mapped address is checked as IPv4');
    t.equal(target.sockets.size, 0, 'the IPv4 listener never saw a connection');
    t.match(server.logs(), /denied → \[::ffff:7f00:1\]:\d+: not allowed \(resolved to 127\.0\.0\.1;/, 'the denial names the address checked');
  });

  t.test(`[${engine}] an IPv4 rule lets every spelling of its address through, connected as that IPv4 address`, async (t) => {
    const from: string[] = [];
    const target = await tcpServer((s) => { from.push(s.remoteAddress ?? ''); s.end(); });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '-v', '--allow', `127.0.0.1:${target.port}`]);
    const p = await rawPeer(server.port);
    t.teardown(async () => { p.ws.close(); await server.stop('SIGKILL'); await target.close(); });
    const P = target.port;
    const spellings = [`[::ffff:127.0.0.1]:${P}`, `[::FFFF:7F00:1]:${P}`, `[0:0:0:0:0:ffff:7f00:1]:${P}`,
      `127.1:${P}`, `0x7f.1:${P}`, `0177.0.0.1:${P}`, `2130706433:${P}`, `127.000.0.001:${P}`];
    const got = await answers(p, spellings);
    for (const s of spellings) t.equal(got.get(s), 'ok', `${s}: allowed`);
    const connecting = (): number => server.logs().split('\n').filter((l) => l.includes(`connecting 127.0.0.1:${P}`)).length;
    t.ok(await waitFor(() => connecting() === spellings.length), `each was connected as 127.0.0.1:${P} (${connecting()})`);
    t.notMatch(server.logs(), /connecting (?!127\.0\.0\.1:)/, 'each was connected as 127.0.0.1, never as the peer spelled it');
    if (engine === 'native') t.equal(server.logs().split(`connecting 127.0.0.1:${P} (in the engine)`).length - 1, spellings.length, 'the engine dialled that text itself');
    t.ok(await waitFor(() => from.length === spellings.length), `the target accepted each (${from.length})`);
    t.ok(from.every((a) => a === '127.0.0.1'), `the target saw IPv4 peers only (${from.join(', ')})`);
  });

  const ll = linkLocal();
  t.test(`[${engine}] a zone id is kept on a link-local address, and checked without it`, { skip: ll ? false : 'no link-local IPv6 address' }, async (t) => {
    const { address, zone } = ll!;
    const listener = createServer((s) => s.destroy());
    await new Promise<void>((r) => listener.listen(0, `${address}%${zone}`, r));
    const P = (listener.address() as AddressInfo).port;
    let seen = 0;
    listener.on('connection', () => { seen++; });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--allow', `[fe80::/10]:${P}`]);
    const p = await rawPeer(server.port);
    t.teardown(async () => { p.ws.close(); await server.stop('SIGKILL'); await new Promise((r) => listener.close(r)); });
    const ok = [`[${address}%${zone}]:${P}`, `[${address.toUpperCase()}%${zone}]:${P}`];
    const got = await answers(p, ok);
    for (const s of ok) t.equal(got.get(s), 'ok', `${s}: allowed and connected on ${zone}`);
    // The server's OPEN_OK can reach us before this process has taken the connection from its listener's queue.
    t.ok(await waitFor(() => seen === ok.length), `the link-local listener accepted each (${seen})`);
  });
}
