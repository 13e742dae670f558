import t from 'tap';
import { connect, howItEnds, tcpServer } from '../helpers/net';
import { engines, startTunnel } from '../helpers/procs';

for (const engine of engines()) {
  t.test(`[${engine}] the client half-closes and still receives the reply`, async (t) => {
    // The target reads until EOF, then answers and closes: only works if FIN travels alone.
    const target = await tcpServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        const got = Buffer.concat(chunks).toString();
        setTimeout(() => s.end(`got ${got.length} bytes: ${got.toUpperCase()}`), 200);
      });
    });
    const tun = await startTunnel({ engine, target: target.addr });
    t.teardown(async () => { await tun.stop(); await target.close(); });
    const s = connect({ port: tun.port, host: '127.0.0.1', allowHalfOpen: true });
    const ended = howItEnds(s);
    s.end('hello');
    const { how, data } = await ended;
    t.equal(how, 'end', 'reply ends with a FIN, not a reset');
    t.equal(data.toString(), 'got 5 bytes: HELLO');
  });

  t.test(`[${engine}] the target half-closes first and still receives the rest`, async (t) => {
    let received = '';
    let targetSawEnd!: () => void;
    const sawEnd = new Promise<void>((r) => { targetSawEnd = r; });
    const target = await tcpServer((s) => {
      s.end('server first; ');
      s.on('data', (c: Buffer) => { received += c.toString(); });
      s.on('end', () => targetSawEnd());
    });
    const tun = await startTunnel({ engine, target: target.addr });
    t.teardown(async () => { await tun.stop(); await target.close(); });
    const s = connect({ port: tun.port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.on('data', (c: Buffer) => { got += c.toString(); });
    await new Promise<void>((r) => s.once('end', () => r()));
    t.equal(got, 'server first; ', 'the FIN from the target arrives after its data');
    // Our direction is still open after the target's FIN.
    s.end('client still talking');
    await sawEnd;
    t.equal(received, 'client still talking');
  });
}
