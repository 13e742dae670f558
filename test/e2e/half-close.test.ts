import t from 'tap';
import { ResetCode, StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import { connect, howItEnds, socketsTo, tcpServer } from '../helpers/net';
import { engines, runCli, startTunnel } from '../helpers/procs';
import { afterHead, clientFrame, rawWs } from '../helpers/raw-ws';
import { waitFor } from '../helpers/wait';

const BINARY = 0x2;
const TEXT = 0x1;

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

  t.test(`[${engine}] the peer's FIN and, in the same read, a RESET or a frame that ends the session: the target's socket is closed, no fd kept`, async (t) => {
    // The target neither reads nor closes: only the server closing its fd ends the connection.
    const target = await tcpServer((s) => s.pause());
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    const pid = server.proc.pid!;
    const held = (): number => socketsTo(pid, target.port);
    // Right after the FIN the server's shutdown of the target socket is still under way (it runs on the next turn of the loop).
    const ends: [string, Buffer][] = [
      ['RESET', clientFrame(BINARY, codec.encodeReset(1, ResetCode.CANCELLED, 'gone'))],
      ['a text message (protocol error: the session closes)', clientFrame(TEXT, Buffer.from('not a frame'))],
    ];
    for (const [what, end] of ends) {
      const before = held();
      const peer = await rawWs(server.port, { after: clientFrame(BINARY, codec.encodeOpen(1, 65536, StreamKind.TCP, target.addr)) });
      await peer.until((g) => afterHead(g).frames.some((f) => f.opcode === BINARY && codec.decodeFrame(f.payload).type === 'open-ok'));
      t.ok(await waitFor(() => held() === before + 1), `${what}: the server holds the target's socket while the stream is open`);
      peer.socket.write(Buffer.concat([clientFrame(BINARY, codec.encodeFin(1)), end]));
      t.ok(await waitFor(() => held() === before, 5000), `${what}: the server closed the target's socket (${held() - before} left)`);
      peer.close();
    }
  });
}
