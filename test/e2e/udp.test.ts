import t from 'tap';
import { createSocket, Socket } from 'node:dgram';
import { AddressInfo } from 'node:net';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { engines, runCli, startTunnel } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';

function udpEcho(): Promise<{ sock: Socket; addr: string }> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, r) => sock.send(Buffer.concat([Buffer.from('echo:'), msg]), r.port, r.address));
  return new Promise((resolve) => sock.bind(0, '127.0.0.1', () => resolve({ sock, addr: `127.0.0.1:${(sock.address() as AddressInfo).port}` })));
}

/** Sends datagrams from one local socket and collects the replies. */
async function exchange(port: number, messages: string[], waitMs = 2000): Promise<string[]> {
  const c = createSocket('udp4');
  const got: string[] = [];
  c.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
  for (const m of messages) {
    c.send(m, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 20));
  }
  const deadline = Date.now() + waitMs;
  while (got.length < messages.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  c.close();
  return got;
}

const is = (type: string, stream?: number) => (f: Frame): boolean => f.type === type && (stream === undefined || f.stream === stream);

for (const engine of engines()) {
  t.test(`[${engine}] UDP datagrams to the client's listen address reach the remote and come back`, async (t) => {
    const echo = await udpEcho();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['--udp-timeout', '600'] });
    t.teardown(async () => { await tun.stop(); echo.sock.close(); });
    const got = await exchange(tun.port, ['one', 'two', 'three']);
    t.same(got.sort(), ['echo:one', 'echo:three', 'echo:two']);
    await tun.client.waitLog(/stream#\d+ udp open from 127\.0\.0\.1:\d+/);
    // The association ends after udp_timeout without datagrams.
    await tun.client.waitLog(/closed \(idle\)/, 5000);
    t.same(await exchange(tun.port, ['again']), ['echo:again'], 'a new association works after the idle one closed');
  });

  t.test(`[${engine}] udp streams at the byte level, and --no-udp refuses them`, async (t) => {
    const echo = await udpEcho();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    const noUdp = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--no-udp']);
    t.teardown(async () => { await server.stop('SIGKILL'); await noUdp.stop('SIGKILL'); echo.sock.close(); });
    const p = await rawPeer(server.port);
    p.send(codec.encodeOpen(1, 65536, StreamKind.UDP, echo.addr));
    await p.next(is('open-ok', 1));
    p.send(codec.encodeDatagram(1, Buffer.from('ping')));
    const d = await p.next(is('datagram', 1)) as { payload: Buffer };
    t.equal(d.payload.toString(), 'echo:ping');
    p.send(codec.encodeData(1, Buffer.from('x')));
    t.equal((await p.closed).code, 1002, 'DATA on a udp stream is a protocol error');
    const q = await rawPeer(noUdp.port);
    q.send(codec.encodeOpen(1, 65536, StreamKind.UDP, echo.addr));
    t.equal((await q.next(is('reset', 1)) as { code: number }).code, 1);
    q.ws.close();
  });
}
