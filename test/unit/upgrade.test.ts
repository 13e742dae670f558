import t from 'tap';
import { acceptKey, parseResponseHead, upgradeProblem, upgradeRequest } from '../../src/protocol/upgrade';
import { describeConnectError, describeTlsFailure } from '../../src/client/connect-options';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

t.test('the upgrade request an engine writes itself (native wss://)', async (t) => {
  const text = upgradeRequest(new URL('wss://example.test/some/path?x=1'), { 'Tws-Auth': 'abc', 'X-Extra': 'v' }, KEY).toString('latin1');
  const [first, ...rest] = text.split('\r\n');
  t.equal(first, 'GET /some/path?x=1 HTTP/1.1');
  t.ok(text.endsWith('\r\n\r\n'), 'ends the head');
  t.ok(rest.includes('Host: example.test'), 'Host without the default port');
  t.ok(rest.includes(`Sec-WebSocket-Key: ${KEY}`));
  t.ok(rest.includes('Sec-WebSocket-Protocol: tws2'));
  t.ok(rest.includes('Tws-Auth: abc') && rest.includes('X-Extra: v'), 'caller headers');
  const other = upgradeRequest(new URL('wss://[::1]:8443/'), { Host: 'front.test' }, KEY).toString('latin1');
  t.match(other, /\r\nHost: front\.test\r\n/, '--host-header replaces Host');
  t.notMatch(other, /Host: \[::1\]/);
  t.match(upgradeRequest(new URL('wss://[::1]:8443/'), {}, KEY).toString('latin1'), /\r\nHost: \[::1\]:8443\r\n/, 'IPv6 host with its port');
  t.throws(() => upgradeRequest(new URL('wss://a.test/'), { 'X-Bad': 'v\r\nInjected: 1' }, KEY), /holds a line break/, 'no header smuggles a line break');
});

t.test('response heads are parsed strictly', async (t) => {
  const ok = parseResponseHead(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(KEY)}\r\nSec-WebSocket-Protocol: tws2\r\n\r\n`);
  t.equal(ok?.status, 101);
  t.equal(upgradeProblem(ok!.headers, KEY), '', 'a right answer has no problem');
  t.equal(parseResponseHead('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')?.status, 404);
  t.equal(parseResponseHead('HTTP/1.0 503\r\n\r\n')?.status, 503, 'no reason phrase');
  t.same(parseResponseHead('HTTP/1.1 101 X\r\nA: 1\r\na: 2\r\n\r\n')?.headers, { a: '1, 2' }, 'repeats joined, names lower-cased');
  for (const bad of ['', 'garbage', 'HTTP/2 101\r\n\r\n', 'HTTP/1.1 1010 X\r\n\r\n', 'HTTP/1.1 101 X\r\nno colon here\r\n\r\n', 'HTTP/1.1 101 X\r\n: empty name\r\n\r\n']) {
    t.equal(parseResponseHead(bad), undefined, JSON.stringify(bad));
  }
});

t.test('a 101 with the wrong accept key, subprotocol or an extension is refused', async (t) => {
  const base = { 'sec-websocket-accept': acceptKey(KEY), 'sec-websocket-protocol': 'tws2' };
  t.match(upgradeProblem({ ...base, 'sec-websocket-accept': acceptKey('AAAAAAAAAAAAAAAAAAAAAA==') }, KEY), /Sec-WebSocket-Accept/);
  t.match(upgradeProblem({ ...base, 'sec-websocket-protocol': 'other' }, KEY), /subprotocol/);
  t.match(upgradeProblem({ 'sec-websocket-accept': acceptKey(KEY) }, KEY), /subprotocol/);
  t.match(upgradeProblem({ ...base, 'sec-websocket-extensions': 'permessage-deflate' }, KEY), /extension/);
});

t.test('native TLS failures get the same advice as the js engine\'s', async (t) => {
  t.match(describeTlsFailure('TLS: unable to get local issuer certificate (UNABLE_TO_GET_ISSUER_CERT_LOCALLY)'), /; trust its CA with --ca FILE/);
  t.match(describeTlsFailure('TLS: Hostname mismatch (ERR_TLS_CERT_ALTNAME_INVALID)'), /--sni/);
  t.equal(describeTlsFailure('TLS: wrong version number (ERR_SSL)'), 'TLS: wrong version number (ERR_SSL)', 'not a certificate problem: no advice');
});

t.test("a TLS failure's words from the server (a name mismatch quotes its certificate's names) are capped", async (t) => {
  const names = Array.from({ length: 2000 }, (_, i) => `DNS:host${i}.example`).join(', ');
  const err = Object.assign(new Error(`Hostname/IP does not match certificate's altnames: Host: localhost. is not in the cert's altnames: ${names}`),
    { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  const line = describeConnectError(err);
  t.match(line, /^TLS: Hostname\/IP does not match certificate's altnames: .*…\(\+\d+ bytes cut\) \(ERR_TLS_CERT_ALTNAME_INVALID\); trust its CA/);
  t.ok(line.length < 500, `${line.length} characters`);
});
