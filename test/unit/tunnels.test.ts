import t from 'tap';
import { join } from 'node:path';
import { readConfigFile, resolveConfig } from '../../src/config/load';
import { parseReverseSpec, parseTunnelSpec } from '../../src/config/tunnels';
import { TwsError } from '../../src/util/errors';

const base = { server: 'ws://127.0.0.1:1/', passwd: 'x' };
const client = (flags: Record<string, unknown>) => resolveConfig('client', { env: {}, flags: { ...base, ...flags } });

t.test('-L specs: ssh syntax, default bind, [v6] bind and target, /udp', async (t) => {
  t.same(parseTunnelSpec('2222:db:22', 'x'), { listen: { host: '127.0.0.1', port: 2222 }, remote: 'db:22', udp: false, name: '-L 2222:db:22' });
  t.same(parseTunnelSpec('0.0.0.0:80:10.0.0.1:8080', 'x'),
    { listen: { host: '0.0.0.0', port: 80 }, remote: '10.0.0.1:8080', udp: false, name: '-L 0.0.0.0:80:10.0.0.1:8080' });
  t.same(parseTunnelSpec('[::1]:5432:[fd00::5]:5432', 'x'),
    { listen: { host: '::1', port: 5432 }, remote: '[fd00::5]:5432', udp: false, name: '-L [::1]:5432:[fd00::5]:5432' });
  t.same(parseTunnelSpec('5353:10.0.0.53:53/udp', 'x'),
    { listen: { host: '127.0.0.1', port: 5353 }, remote: '10.0.0.53:53', udp: true, name: '-L 5353:10.0.0.53:53/udp' });
  t.equal(parseTunnelSpec('localhost:1:h:2/tcp', 'x').udp, false);
  t.equal(parseTunnelSpec('0:h:2', 'x').listen.port, 0, 'port 0 = any free port');
});

t.test('a bad -L spec is one TWS_ERR_CONFIG line naming the value', async (t) => {
  const cases: [string, RegExp][] = [
    ['2222:db', /flag -L\/--local: expected \[BIND:\]PORT:HOST:PORT\[\/udp\], got "2222:db"/],
    ['a:b:c:d:e', /expected \[BIND:\]PORT:HOST:PORT\[\/udp\], got "a:b:c:d:e"|IPv6 addresses need brackets/],
    ['2222:::1:22', /IPv6 addresses need brackets .* in "2222:::1:22"/],
    ['99999:db:22', /port 99999 is out of range \(1-65535\) in listen address of "99999:db:22"/],
    ['2222:db:0', /port 0 is out of range \(1-65535\) in target of "2222:db:0"/],
    ['2222:db:ssh', /"ssh" is not a port number in target of "2222:db:ssh"/],
    ['2222:bad host:22', /"bad host" is not a valid host name in target of/],
    ['[1.2.3.4]:1:h:2', /"1.2.3.4" is not an IPv6 address in listen address of/],
    ['2222:db:22/sctp', /"22\/sctp" is not a port number in target of "2222:db:22\/sctp"/],
    [':2222:db:22', /empty bind address in ":2222:db:22"/],
  ];
  for (const [spec, re] of cases) {
    const err = t.throws(() => client({ tunnels: [spec] }), { code: 'TWS_ERR_CONFIG' }, spec) as TwsError;
    t.match(err.message, re, spec);
    t.notMatch(err.message, /\n/, `${spec}: one line`);
  }
});

t.test('-L alone is enough; with -l/-r both forms are tunnels; -l and -r still go together', async (t) => {
  const only = client({ tunnels: ['2222:db:22', '5353:ns:53/udp'] });
  t.equal(only.listen, undefined);
  t.equal(only.remote, undefined);
  t.same(only.tunnels.map((x) => x.name), ['-L 2222:db:22', '-L 5353:ns:53/udp']);
  const both = client({ tunnels: ['2222:db:22'], listen: '127.0.0.1:5000', remote: 'a:1' });
  t.same(both.listen, { host: '127.0.0.1', port: 5000 });
  t.equal(both.remote, 'a:1');
  t.equal(both.tunnels.length, 1);
  const legacy = client({ listen: '127.0.0.1:5000', remote: 'a:1' });
  t.same(legacy.tunnels, [], 'tws-rust -l/-r alone: no -L tunnels');
  t.throws(() => client({ tunnels: ['2222:db:22'], listen: '127.0.0.1:5000' }), { message: /give -r\/--remote .* too: -l and -r make one tunnel together/ });
  t.throws(() => client({ tunnels: ['2222:db:22'], remote: 'a:1' }), { message: /give -l\/--listen .* too/ });
  t.throws(() => client({}), { message: /missing required option: -l\/--listen with -r\/--remote, -L\/--local, -R\/--reverse, -D\/--socks, --http-connect or --stdio/ });
});

t.test('--http-connect [BIND:]PORT (YAML http_connect) is a client of its own, on its own address', async (t) => {
  t.same(client({ httpConnect: '8080' }).httpConnect, { host: '127.0.0.1', port: 8080 }, 'BIND defaults to 127.0.0.1');
  t.same(client({ httpConnect: 8080 }).httpConnect, { host: '127.0.0.1', port: 8080 }, 'a YAML number');
  t.same(client({ httpConnect: '[::1]:0' }).httpConnect, { host: '::1', port: 0 });
  t.same(client({ httpConnect: '8080' }).tunnels, [], 'no -L or -l/-r needed');
  t.throws(() => client({ httpConnect: 'nope' }), { code: 'TWS_ERR_CONFIG', message: /http_connect|--http-connect/ });
  t.throws(() => client({ httpConnect: '8080', tunnels: ['8080:a:1'] }), { message: /-L 8080:a:1 and --http-connect both listen on tcp 127\.0\.0\.1:8080/ });
  t.doesNotThrow(() => client({ httpConnect: '8080', tunnels: ['8080:a:1/udp'] }), 'a UDP tunnel on the same port is another socket');
});

t.test('two tunnels on the same listen address and protocol are an error', async (t) => {
  t.throws(() => client({ tunnels: ['2222:a:1', '127.0.0.1:2222:b:2'] }),
    { code: 'TWS_ERR_CONFIG', message: /tunnels -L 2222:a:1 and -L 2222:b:2 both listen on tcp 127\.0\.0\.1:2222/ });
  t.throws(() => client({ listen: '127.0.0.1:2222', remote: 'a:1', tunnels: ['2222:b:2/udp'] }),
    { message: /tunnels -l 127\.0\.0\.1:2222 -r a:1 and -L 2222:b:2\/udp both listen on udp 127\.0\.0\.1:2222/ });
  t.throws(() => client({ listen: '127.0.0.1:2222', remote: 'a:1', tunnels: ['2222:b:2'] }), { message: /both listen on tcp 127\.0\.0\.1:2222/ });
  t.doesNotThrow(() => client({ listen: '127.0.0.1:2222', remote: 'a:1', noUdp: 'true', tunnels: ['2222:b:2/udp'] }), '--no-udp frees the UDP side');
  t.doesNotThrow(() => client({ tunnels: ['2222:a:1', '2222:b:2/udp', '127.0.0.2:2222:c:3', '0:d:4', '0:e:5'] }), 'tcp and udp, other binds, port 0');
});

t.test('YAML tunnels: strings and maps; bad entries name the key and the value', async (t) => {
  const dir = t.testdir({
    'ok.yaml': [
      'server: ws://127.0.0.1:1/', 'passwd: x', 'tunnels:',
      '  - 2222:db:22',
      '  - "[::1]:5432:[fd00::5]:5432"',
      '  - { listen: 5353, remote: "10.0.0.53:53", udp: true }',
      '  - listen: "0.0.0.0:8080"', '    remote: web:80', '',
    ].join('\n'),
    'one.yaml': 'server: ws://127.0.0.1:1/\npasswd: x\ntunnels: 2222:db:22\n',
    'badkey.yaml': 'server: ws://127.0.0.1:1/\npasswd: x\ntunnels:\n  - { listen: 1, remote: "a:1", proto: udp }\n',
    'nolisten.yaml': 'server: ws://127.0.0.1:1/\npasswd: x\ntunnels:\n  - { remote: "a:1" }\n',
    'badudp.yaml': 'server: ws://127.0.0.1:1/\npasswd: x\ntunnels:\n  - { listen: 1, remote: "a:1", udp: "yes" }\n',
    'badspec.yaml': 'server: ws://127.0.0.1:1/\npasswd: x\ntunnels:\n  - 2222:db\n',
  });
  const load = (f: string) => resolveConfig('client', { file: readConfigFile(join(dir, f), 'client'), fileName: f, env: {}, flags: {} });
  t.same(load('ok.yaml').tunnels, [
    { listen: { host: '127.0.0.1', port: 2222 }, remote: 'db:22', udp: false, name: '-L 2222:db:22' },
    { listen: { host: '::1', port: 5432 }, remote: '[fd00::5]:5432', udp: false, name: '-L [::1]:5432:[fd00::5]:5432' },
    { listen: { host: '127.0.0.1', port: 5353 }, remote: '10.0.0.53:53', udp: true, name: '-L 5353:10.0.0.53:53/udp' },
    { listen: { host: '0.0.0.0', port: 8080 }, remote: 'web:80', udp: false, name: '-L 0.0.0.0:8080:web:80' },
  ]);
  t.equal(load('one.yaml').tunnels.length, 1, 'a single string is one tunnel');
  t.throws(() => load('badkey.yaml'), { message: /config key "tunnels" in badkey\.yaml: unknown key "proto" \(known: listen, remote, udp\)/ });
  t.throws(() => load('nolisten.yaml'), { message: /config key "tunnels" in nolisten\.yaml: needs listen .* and remote/ });
  t.throws(() => load('badudp.yaml'), { message: /udp must be true or false/ });
  t.throws(() => load('badspec.yaml'), { message: /config key "tunnels" in badspec\.yaml: expected \[BIND:\]PORT:HOST:PORT\[\/udp\], got "2222:db"/ });
  // Flags replace the file's list, as every repeatable flag does.
  const c = resolveConfig('client', { file: readConfigFile(join(dir, 'ok.yaml'), 'client'), env: {}, flags: { tunnels: ['1:a:1'] } });
  t.same(c.tunnels.map((x) => x.name), ['-L 1:a:1']);
});

t.test('-R specs: ssh syntax, the server binds an IP (127.0.0.1 by default) and a real port; -R alone is enough', async (t) => {
  t.same(parseReverseSpec('8080:127.0.0.1:80', 'x'), { bind: '127.0.0.1:8080', remote: '127.0.0.1:80', name: 'reverse 8080' });
  t.same(parseReverseSpec('0.0.0.0:8080:web.internal:80', 'x'), { bind: '0.0.0.0:8080', remote: 'web.internal:80', name: 'reverse 0.0.0.0:8080' });
  t.same(parseReverseSpec('[::1]:8080:[::1]:80', 'x'), { bind: '[::1]:8080', remote: '[::1]:80', name: 'reverse [::1]:8080' });
  const only = client({ reverse: ['8080:127.0.0.1:80'] });
  t.same(only.reverse.map((r) => r.name), ['reverse 8080']);
  t.same(only.tunnels, []);
  const cases: [string, RegExp][] = [
    ['8080:h:80/udp', /reverse tunnels carry TCP only/],
    ['localhost:8080:h:80', /the server binds an IP address/],
    ['0:h:80', /needs a port on the server/],
    ['8080:h', /expected \[BIND:\]PORT:HOST:PORT/],
  ];
  for (const [spec, re] of cases) t.throws(() => client({ reverse: [spec] }), { code: 'TWS_ERR_CONFIG', message: re }, spec);
  t.throws(() => client({ reverse: ['8080:a:1', '127.0.0.1:8080:b:2'] }), { message: /two reverse tunnels listen on 127\.0\.0\.1:8080/ });
});

t.test('YAML reverse: (client) and allow_reverse: (server)', async (t) => {
  const dir = t.testdir({
    'client.yaml': 'server: ws://127.0.0.1:1/\npasswd: x\nreverse:\n  - 8080:127.0.0.1:80\n  - "0.0.0.0:2222:127.0.0.1:22"\n',
    'server.yaml': 'listen: 127.0.0.1:1\npasswd: x\nallow_reverse: ["127.0.0.1:8000-8999", "0.0.0.0:2222"]\n',
    'bad.yaml': 'server: ws://127.0.0.1:1/\npasswd: x\nreverse:\n  - { listen: 1, remote: "a:1" }\n',
  });
  const c = resolveConfig('client', { file: readConfigFile(join(dir, 'client.yaml'), 'client'), env: {}, flags: {} });
  t.same(c.reverse.map((r) => `${r.name} ${r.bind} ${r.remote}`), ['reverse 8080 127.0.0.1:8080 127.0.0.1:80', 'reverse 0.0.0.0:2222 0.0.0.0:2222 127.0.0.1:22']);
  const s = resolveConfig('server', { file: readConfigFile(join(dir, 'server.yaml'), 'server'), env: {}, flags: {} });
  t.same(s.allowReverse?.map((r) => r.text), ['127.0.0.1:8000-8999', '0.0.0.0:2222']);
  t.throws(() => resolveConfig('client', { file: readConfigFile(join(dir, 'bad.yaml'), 'client'), fileName: 'bad.yaml', env: {}, flags: {} }),
    { code: 'TWS_ERR_CONFIG', message: /config key "reverse" in bad\.yaml: expected "\[BIND:\]PORT:HOST:PORT"/ });
});
