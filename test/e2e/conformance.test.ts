import t from 'tap';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { engines, runCli } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';
import { afterHead, clientFrame, closePayload, rawWs } from '../helpers/raw-ws';

const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

/** The code of a close frame's payload, or 'empty'. */
const codeOf = (payload: Buffer): number | 'empty' => (payload.length >= 2 ? payload.readUInt16BE(0) : 'empty');

for (const engine of engines()) {
  t.test(`[${engine}] the 101 comes first and whole, even with frames pipelined behind the upgrade request`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(() => server.stop('SIGKILL'));

    // A ping sent in the same write as the request: the 101, then its pong.
    const a = await rawWs(server.port, { after: clientFrame(PING, Buffer.from('early ping')) });
    const gotA = await a.until((g) => afterHead(g).frames.length >= 1);
    t.match(gotA.toString('latin1'), /^HTTP\/1\.1 101 Switching Protocols\r\n/, 'the response starts with the 101');
    const framesA = afterHead(gotA).frames;
    t.equal(framesA[0]!.opcode, PONG, 'then the pong');
    t.equal(framesA[0]!.payload.toString(), 'early ping');
    a.close();

    // A protocol error pipelined behind the request: the 101, then close 1002 (not a bare close frame).
    const b = await rawWs(server.port, { after: clientFrame(0x1, Buffer.from('text is not allowed')) });
    const gotB = await b.until((g) => afterHead(g).frames.some((f) => f.opcode === CLOSE));
    t.match(gotB.toString('latin1'), /^HTTP\/1\.1 101 Switching Protocols\r\n/, 'the 101 is not dropped by the error');
    t.equal(codeOf(afterHead(gotB).frames.find((f) => f.opcode === CLOSE)!.payload), 1002, 'then close 1002');
    b.close();
  });

  t.test(`[${engine}] a peer's close frame is answered as RFC 6455 says: invalid codes 1002, a reason that is not UTF-8 1007`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(() => server.stop('SIGKILL'));
    const cases: [string, Buffer, number | 'empty'][] = [
      ['1000 with a reason', closePayload(1000, 'bye'), 1000],
      ['4000 (private use)', closePayload(4000), 4000],
      ['a 1-byte body', Buffer.from([0x03]), 1002],
      ...[999, 1004, 1005, 1006, 1015, 1016, 2999, 5000].map((c): [string, Buffer, number] => [`code ${c}`, closePayload(c), 1002]),
      ['a reason that is not UTF-8', Buffer.concat([closePayload(1000), Buffer.from([0xc0, 0xaf])]), 1007],
    ];
    for (const [what, payload, want] of cases) {
      const p = await rawWs(server.port);
      await p.until((g) => g.includes('\r\n\r\n'));
      p.socket.write(clientFrame(CLOSE, payload));
      const got = await p.until((g) => afterHead(g).frames.some((f) => f.opcode === CLOSE));
      t.equal(codeOf(afterHead(got).frames.find((f) => f.opcode === CLOSE)!.payload), want, `${what}: answered ${want}`);
      p.close();
    }
  });

  t.test(`[${engine}] frame bodies other than DATA are limited to 65536 bytes, the same in both engines`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(() => server.stop('SIGKILL'));
    // A udp stream to a port nothing answers on: datagrams may be sent once it is open.
    const ok = await rawPeer(server.port);
    ok.send(codec.encodeOpen(1, 65536, StreamKind.UDP, '127.0.0.1:9'));
    await ok.next((f: Frame) => f.stream === 1 && f.type === 'open-ok');
    ok.send(codec.encodeDatagram(1, Buffer.alloc(65536)));
    ok.send(codec.encodeOpen(3, 65536, StreamKind.TCP, '127.0.0.1:1'));
    t.equal((await ok.next((f: Frame) => f.stream === 3 && f.type === 'reset')).type, 'reset', 'a 65536-byte DATAGRAM is fine');
    ok.send(codec.encodeDatagram(1, Buffer.alloc(65537)));
    t.equal((await ok.closed).code, 1002, 'one byte more closes the session with 1002');

    const long = await rawPeer(server.port);
    long.send(codec.encodeOpen(1, 65536, StreamKind.TCP, `${'a'.repeat(65532)}:1`));
    t.equal((await long.closed).code, 1002, 'so does an OPEN whose body is over 65536 bytes');
  });
}
