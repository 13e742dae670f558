/**
 * openStream's reply (StreamReply), the engine feature proxy listeners stand
 * on: a client session of each engine, in this process, opens streams
 * through a real `tws server` and the engine answers the local socket itself:
 * `ok` before the peer's bytes, a refusal's rule bytes then a FIN, and
 * `otherwise` when the session dies first.
 */
import t from 'tap';
import type { Test } from 'tap';
import { AddressInfo, createServer, Socket } from 'node:net';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { rawUpgrade } from '../../src/client/raw-upgrade';
import { sessionOptions } from '../../src/engine/options';
import { selectEngine } from '../../src/engine/select';
import type { EngineSession, StreamReply } from '../../src/engine/types';
import { ResetCode } from '../../src/protocol/constants';
import { createLogger } from '../../src/util/log';
import { connect, freePort, hangingTarget, howItEnds, tcpServer } from '../helpers/net';
import { engines, PASSWD, Proc, runCli } from '../helpers/procs';

const REPLY: StreamReply = {
  ok: Buffer.from('OK\n'),
  refused: [
    { code: ResetCode.CONNECT_FAILED, reasonIncludes: 'ECONNREFUSED', bytes: Buffer.from('REFUSED\n') },
    { code: ResetCode.DENIED, bytes: Buffer.from('DENIED\n') },
  ],
  otherwise: Buffer.from('OTHERWISE\n'),
};

/** A client session of `engine` to the server at `port`. */
async function clientSession(engine: string, port: number): Promise<EngineSession> {
  const { socket, head } = await rawUpgrade(new URL(`ws://127.0.0.1:${port}/`), { 'Tws-Auth': buildAuthHeader(PASSWD) }, 5000);
  const logger = createLogger('error', () => undefined);
  return selectEngine(engine as 'js' | 'native').adopt(socket, head, Buffer.alloc(0), sessionOptions('client', { logger }));
}

/** A connected loopback pair: `ours` goes to the engine, `app` is the local application's end. */
async function localPair(): Promise<{ ours: Socket; app: Socket }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const app = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const ours = await accepted;
  server.close();
  return { ours, app };
}

async function withServer(t: Test, engine: string, args: string[]): Promise<Proc> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, ...args]);
  t.teardown(() => server.stop('SIGKILL'));
  return server;
}

for (const engine of engines()) {
  t.test(`[${engine}] the engine answers the local socket: ok before payload, a refusal's bytes, otherwise`, async (t) => {
    const hello = await tcpServer((s) => s.end('hello from the target'));
    t.teardown(() => hello.close());
    const closedPort = await freePort();  // nothing listens there
    const hanging = await hangingTarget();
    t.teardown(() => hanging.close());
    const hangPort = hanging.addr.split(':')[1];
    // 127.0.0.1 on the target ports is allowed; 127.0.0.2 is not.
    const server = await withServer(t, engine, ['--allow', `127.0.0.1:${hello.port}`, '--allow', `127.0.0.1:${closedPort}`,
      '--allow', `127.0.0.1:${hangPort}`]);
    const session = await clientSession(engine, server.port);
    t.teardown(() => session.close(1000, 'done'));

    const open = async (target: string): Promise<{ how: string; data: Buffer }> => {
      const { ours, app } = await localPair();
      const ended = howItEnds(app);
      t.ok(session.openStream(ours, target, { tunnel: 'test', reply: REPLY }) > 0, `a stream to ${target} opens`);
      return ended;
    };
    const ok = await open(hello.addr);
    t.equal(ok.data.toString(), 'OK\nhello from the target', 'accepted: the ok bytes, then the target\'s');
    t.equal(ok.how, 'end', 'and the end is a FIN');

    const denied = await open(`127.0.0.2:${hello.port}`);
    t.same([denied.data.toString(), denied.how], ['DENIED\n', 'end'], 'denied by --allow: the rule for RESET 1, then a FIN (no RST)');

    const refused = await open(`127.0.0.1:${closedPort}`);
    t.same([refused.data.toString(), refused.how], ['REFUSED\n', 'end'], 'a closed port: the rule for "connect failed: ECONNREFUSED"');

    // The session dies while a stream is still opening: `otherwise`, then a FIN.
    const { ours, app } = await localPair();
    const lost = howItEnds(app);
    t.ok(session.openStream(ours, hanging.addr, { reply: REPLY }) > 0, 'a stream to a target that never answers opens');
    await server.stop('SIGKILL');
    const got = await lost;
    t.same([got.data.toString(), got.how], ['OTHERWISE\n', 'end'], 'the session lost while opening: otherwise, then a FIN');

    // A session that is gone answers at once with otherwise.
    await new Promise<void>((r) => (session.closed ? r() : session.once('close', () => r())));
    const late = await localPair();
    const lateEnd = howItEnds(late.app);
    t.equal(session.openStream(late.ours, hello.addr, { reply: REPLY }), 0, 'a closed session opens nothing');
    t.same([(await lateEnd).data.toString(), (await lateEnd).how], ['OTHERWISE\n', 'end'], 'and answers otherwise, with a FIN');
  });

  t.test(`[${engine}] a reply out of bounds is a TypeError at the call`, async (t) => {
    const server = await withServer(t, engine, []);
    const session = await clientSession(engine, server.port);
    t.teardown(() => session.close(1000, 'done'));
    const { ours, app } = await localPair();
    t.teardown(() => { ours.destroy(); app.destroy(); });
    const big = Buffer.alloc(513);
    t.throws(() => session.openStream(ours, '127.0.0.1:1', { reply: { ...REPLY, ok: big } }), TypeError, 'ok of 513 bytes');
    const rules = Array.from({ length: 17 }, () => ({ code: 1, bytes: Buffer.from('x') }));
    t.throws(() => session.openStream(ours, '127.0.0.1:1', { reply: { ...REPLY, refused: rules } }), TypeError, '17 rules');
    t.throws(() => session.openStream(ours, '127.0.0.1:1', { reply: { ...REPLY, otherwise: big } }), TypeError, 'otherwise of 513 bytes');
    t.equal(session.streamCount, 0, 'no stream was opened');
  });
}
