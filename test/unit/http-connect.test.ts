import t from 'tap';
import { CONNECT_REPLY, MAX_HEAD, parseConnectHead } from '../../src/client/http-connect';
import { checkReply, pickReply } from '../../src/engine/reply';
import { ResetCode } from '../../src/protocol/constants';

const head = (text: string): Buffer => Buffer.from(text, 'latin1');
const status = (b: Buffer): string => b.subarray(0, b.indexOf('\r\n')).toString('latin1');

t.test('a CONNECT head gives its target and the bytes past it', async (t) => {
  const v = parseConnectHead(head('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nUser-Agent: x\r\n\r\nPIPELINED'));
  t.same(v.kind === 'connect' && [v.target, v.rest.toString()], ['example.org:443', 'PIPELINED']);
  const v6 = parseConnectHead(head('CONNECT [::1]:22 HTTP/1.0\n\n'));
  t.same(v6.kind === 'connect' && [v6.target, v6.rest.length], ['[::1]:22', 0], 'IPv6 in brackets, bare LF line ends, HTTP/1.0');
  const mixed = parseConnectHead(head('CONNECT a:1 HTTP/1.1\n\r\nREST'));
  t.same(mixed.kind === 'connect' && [mixed.target, mixed.rest.toString()], ['a:1', 'REST'], 'a bare LF, then a CRLF empty line, ends the head too');
});

t.test('an unfinished head waits for more, up to the bound', async (t) => {
  t.equal(parseConnectHead(head('CONNECT a:1 HTTP/1.1\r\nHost: a')).kind, 'incomplete');
  t.equal(parseConnectHead(head('')).kind, 'incomplete');
  const long = parseConnectHead(head(`CONNECT a:1 HTTP/1.1\r\nX: ${'a'.repeat(MAX_HEAD)}`));
  t.same(long.kind === 'answer' && status(long.response), 'HTTP/1.1 400 Bad Request', 'past 8 KiB without an end: 400');
  const endsLate = parseConnectHead(head(`CONNECT a:1 HTTP/1.1\r\nX: ${'a'.repeat(MAX_HEAD)}\r\n\r\n`));
  t.equal(endsLate.kind, 'answer', 'a complete head longer than 8 KiB is refused too');
});

t.test('other methods get 405 with Allow: CONNECT; bad requests 400', async (t) => {
  const get = parseConnectHead(head('GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n'));
  t.ok(get.kind === 'answer' && status(get.response) === 'HTTP/1.1 405 Method Not Allowed' && /\r\nAllow: CONNECT\r\n/.test(get.response.toString()));
  for (const bad of ['CONNECT example.org HTTP/1.1\r\n\r\n', 'CONNECT a:99999 HTTP/1.1\r\n\r\n', 'CONNECT a:1 HTTP/2.0\r\n\r\n',
    'SSH-2.0-OpenSSH\r\n\r\n', 'CONNECT  a:1 HTTP/1.1\r\n\r\n', 'CONNECT a:1\tHTTP/1.1\r\n\r\n', '\x00\x01\r\n\r\n']) {
    const v = parseConnectHead(head(bad));
    t.ok(v.kind === 'answer' && status(v.response) === 'HTTP/1.1 400 Bad Request', JSON.stringify(bad));
  }
  t.equal(parseConnectHead(head('connect a:1 HTTP/1.1\r\n\r\n')).kind, 'answer', 'methods are case-sensitive');
});

t.test('responses carry no peer text: the why is for the log only', async (t) => {
  const v = parseConnectHead(head('G\x1b[31mET / HTTP/1.1\r\n\r\n'));
  t.ok(v.kind === 'answer' && !v.response.toString('latin1').includes('\x1b'));
  const m = parseConnectHead(head('PROPFIND / HTTP/1.1\r\n\r\n'));
  t.ok(m.kind === 'answer' && !m.response.toString('latin1').includes('PROPFIND'));
});

t.test('RESET codes and reasons map to the statuses of the issue', async (t) => {
  checkReply(CONNECT_REPLY);
  const cases: [number, string, string][] = [
    [ResetCode.DENIED, 'target not allowed', '403'],
    [ResetCode.CONNECT_FAILED, 'connect failed: ECONNREFUSED', '502'],
    [ResetCode.CONNECT_FAILED, 'connect failed: ENOTFOUND', '502'],
    [ResetCode.CONNECT_FAILED, 'connect failed: EHOSTUNREACH', '502'],
    [ResetCode.TIMEOUT, 'connect timed out after 10000 ms', '504'],
    [ResetCode.TIMEOUT, 'resolve timed out after 10000 ms', '504'],
    [ResetCode.TOO_MANY_STREAMS, 'too many streams', '502'],
    [ResetCode.INTERNAL, 'anything', '502'],
  ];
  for (const [code, reason, want] of cases) t.equal(status(pickReply(CONNECT_REPLY, code, reason)).split(' ')[1], want, `${code} ${reason}`);
  t.match(pickReply(CONNECT_REPLY, 2, 'connect failed: ENOTFOUND').toString(), /resolve the target name/);
  t.match(pickReply(CONNECT_REPLY, 2, 'connect failed: ECONNREFUSED').toString(), /refused the connection/);
  t.match(CONNECT_REPLY.ok.toString(), /^HTTP\/1\.1 200 Connection established\r\n\r\n$/);
});
