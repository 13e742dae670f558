import t from 'tap';
import { lookup } from 'node:dns/promises';
import { randomInt } from 'node:crypto';
import { IpAddress, ipText, parseBindIp, parseIp, sourceKey, unmappedAddress } from '../../src/util/ip';
import { AllowList, parseAllowRules } from '../../src/policy/allow-list';

t.test('IPv4 in every form getaddrinfo reads is its dotted-decimal address', async (t) => {
  const forms: [string, string][] = [
    ['127.0.0.1', '127.0.0.1'], ['127.1', '127.0.0.1'], ['127.0.1', '127.0.0.1'], ['0x7f.1', '127.0.0.1'], ['0X7F000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'], ['2130706433', '127.0.0.1'], ['127.000.0.01', '127.0.0.1'], ['10.0x10.0377.0xff', '10.16.255.255'],
    ['1.65535', '1.0.255.255'], ['4294967295', '255.255.255.255'], ['0x0a.0.0.1', '10.0.0.1'],
  ];
  for (const [text, want] of forms) {
    t.same(parseIp(text), { address: want, family: 'ipv4' }, `${text} → ${want}`);
    // The resolver the connect would otherwise have gone through agrees.
    t.equal((await lookup(text, { family: 4 })).address, want, `getaddrinfo(${text}) agrees`);
  }
});

t.test('a numeric host that is no IPv4 address, or is the unspecified one, is refused', async (t) => {
  for (const text of ['127.0.0.1.', '127.1.', '08.1', '09', '256.0.0.1', '1.256.1', '1.2.3.4.5', '4294967296', '1.16777216', '0x', '1.0x.1']) {
    t.equal(typeof parseIp(text), 'string', `${text}: refused`);
  }
  for (const text of ['0', '0.0.0.0', '0x0', '00.0', '::ffff:0.0.0.0', '::', '0:0:0:0:0:0:0:0']) {
    t.match(parseIp(text), /unspecified/, `${text}: the unspecified address`);
  }
});

t.test('names are names', async (t) => {
  for (const text of ['localhost', 'db.internal', 'db.internal.', 'face.cafe', '0x7f.com', '1.example', 'a1.2', 'foo.1']) {
    t.equal(parseIp(text), undefined, text);
  }
});

t.test('IPv4-mapped IPv6 is its IPv4 address in any spelling', async (t) => {
  for (const text of ['::ffff:127.0.0.1', '::ffff:7f00:1', '::FFFF:7F00:0001', '0:0:0:0:0:ffff:7f00:1', '0000:0000:0000:0000:0000:FFFF:127.0.0.1', '0::ffff:7f00:1']) {
    t.same(parseIp(text), { address: '127.0.0.1', family: 'ipv4' }, text);
  }
});

t.test('IPv6 is RFC 5952 text whatever its spelling', async (t) => {
  const forms: [string, string][] = [
    ['::1', '::1'], ['0:0:0:0:0:0:0:1', '::1'], ['FE80::0001', 'fe80::1'], ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], ['2001:0db8::', '2001:db8::'], ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['64:ff9b::10.0.0.1', '64:ff9b::a00:1'], ['::ffff:0:10.0.0.1', '::ffff:0:a00:1'],
  ];
  for (const [text, want] of forms) t.same(parseIp(text), { address: want, family: 'ipv6' }, `${text} → ${want}`);
  // Random addresses, spelled in full, upper case with leading zeros: the same text as the URL parser's canonical form.
  for (let i = 0; i < 500; i++) {
    const g = Array.from({ length: 8 }, () => (randomInt(3) === 0 ? 0 : randomInt(65536)));
    g[0] = 0x2001;
    const full = g.map((x) => x.toString(16).toUpperCase().padStart(4, '0')).join(':');
    const want = new URL(`http://[${full}]/`).hostname.slice(1, -1);
    t.same(parseIp(full), { address: want, family: 'ipv6' }, full, { diagnostic: false });
  }
  for (const text of ['1::2::3', ':1::2', '1::2:', ':::', '12345::1', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8',
    '::ffff:127.000.0.1', '::ffff:1.2.3', '1.2.3.4::', '::g', '[::1]']) {
    t.equal(typeof parseIp(text), 'string', `${text}: refused`);
  }
});

t.test('zone ids: kept on link-local addresses, refused on any other', async (t) => {
  t.same(parseIp('fe80::1%eth0'), { address: 'fe80::1', family: 'ipv6', zone: 'eth0' });
  t.same(parseIp('FEBF:0::1%2'), { address: 'febf::1', family: 'ipv6', zone: '2' });
  t.equal(ipText(parseIp('FE80:0:0:0:0:0:0:1%lo') as never), 'fe80::1%lo');
  for (const text of ['::ffff:127.0.0.1%lo', '::ffff:7f00:1%1', '::1%lo', '2001:db8::1%eth0', 'fec0::1%eth0', 'ff02::1%eth0',
    'fe80::1%', 'fe80::1%a%b', 'fe80::1%a:b', 'fe80::1%sixteen-chars-xx', '127.0.0.1%lo']) {
    t.equal(typeof parseIp(text), 'string', `${text}: refused`);
  }
});

t.test('IPv4-compatible ::a.b.c.d is refused; ::1 is not one', async (t) => {
  for (const text of ['::127.0.0.1', '::7f00:1', '::0.0.0.2', '::2', '0:0:0:0:0:0:a00:1']) t.match(parseIp(text), /IPv4-compatible/, text);
  t.same(parseIp('::1'), { address: '::1', family: 'ipv6' });
});

t.test('the allow-list checks what a resolver answers in the same canonical form, and connects that', async (t) => {
  const answer = (...a: string[]) => async (): Promise<string[]> => a;
  const v6 = new AllowList(parseAllowRules(['[::/0]:*', '[fe80::/10]:*'], 'test'));
  const v4 = new AllowList(parseAllowRules(['127.0.0.1:22'], 'test'));
  const any = new AllowList(parseAllowRules(['*:22'], 'test'));
  const name = { host: 'db.example', port: 22 };
  t.match(await v6.decide(name, answer('::ffff:127.0.0.1')), { ok: false }, 'a mapped answer is IPv4: no IPv6 rule lets it through');
  t.match(await v6.decide(name, answer('::FFFF:7F00:1')), { ok: false }, 'in any spelling');
  t.match(await v4.decide(name, answer('::ffff:7f00:1')), { ok: true, address: '127.0.0.1' }, 'and an IPv4 rule does, connected as IPv4');
  t.match(await v6.decide(name, answer('::7f00:1', '::', 'fe80::1%a%b')), { ok: false }, 'compatible, unspecified and bad-zone answers are skipped');
  t.match(await any.decide(name, answer('0.0.0.0', '::ffff:0:0', '::')), { ok: false }, 'even by *: they would be connected as loopback');
  t.match(await v6.decide(name, answer('::ffff:7f00:1', '2001:DB8:0::1')), { ok: true, address: '2001:db8::1' }, 'the first allowed answer, canonical');
  t.match(await v6.decide({ host: 'fe80::1%eth0', port: 22 }), { ok: true, address: 'fe80::1%eth0' }, 'a link-local target keeps its zone');
  t.match(await v6.decide({ host: '::ffff:127.0.0.1%lo', port: 22 }), { ok: false, why: /zone id/ }, 'a mapped one with a zone is refused');
  t.match(await v4.decide({ host: '0x7f.1', port: 22 }), { ok: true, address: '127.0.0.1' }, 'a numeric target is its IPv4 address, not resolved');
});

t.test('a rule inside ::ffff:0:0/96 is the IPv4 rule it spells: mapped targets are checked as IPv4', async (t) => {
  const mapped = new AllowList(parseAllowRules(['[::ffff:10.0.0.0/104]:22', '[::ffff:7f00:1]:80'], 'test'));
  t.match(await mapped.decide({ host: '10.9.8.7', port: 22 }), { ok: true, address: '10.9.8.7' }, '/104 is 10.0.0.0/8');
  t.match(await mapped.decide({ host: '::ffff:10.9.8.7', port: 22 }), { ok: true, address: '10.9.8.7' }, 'in either spelling');
  t.match(await mapped.decide({ host: '11.0.0.1', port: 22 }), { ok: false }, 'and no wider');
  t.match(await mapped.decide({ host: '127.0.0.1', port: 80 }), { ok: true }, 'a single mapped address is that IPv4 address');
  t.match(await mapped.decide({ host: '::1', port: 80 }), { ok: false });
  const wide = new AllowList(parseAllowRules(['[::/0]:*'], 'test'));
  t.match(await wide.decide({ host: '10.0.0.1', port: 22 }), { ok: false }, 'a wider IPv6 rule still covers IPv6 only');
});

t.test('an IPv6 address a translator turns into IPv4 (NAT64, IPv4-translated) passes only * or a rule within its prefix', async (t) => {
  const wide = new AllowList(parseAllowRules(['[::/0]:*'], 'test'));
  for (const host of ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b:1::7f00:1', '::ffff:0:127.0.0.1', '::ffff:0:a00:1']) {
    t.match(await wide.decide({ host, port: 22 }), { ok: false }, `[::/0] does not allow ${host}`);
  }
  t.match(await wide.decide({ host: '2001:db8::1', port: 22 }), { ok: true }, 'it still allows other IPv6 targets');
  t.match(await wide.decide({ host: '2002:7f00:1::1', port: 22 }), { ok: true }, 'and 6to4 ones, which reach IPv6 hosts');
  const nat64 = new AllowList(parseAllowRules(['[64:ff9b::/96]:443', '[64:ff9b::a00:0/104]:22', '*:8080'], 'test'));
  t.match(await nat64.decide({ host: '64:ff9b::7f00:1', port: 443 }, async () => []), { ok: true, address: '64:ff9b::7f00:1' }, 'a rule naming the prefix allows it');
  t.match(await nat64.decide({ host: '64:ff9b::a01:203', port: 22 }), { ok: true }, 'as does one inside it');
  t.match(await nat64.decide({ host: '64:ff9b::b00:1', port: 22 }), { ok: false }, 'for its own addresses only');
  t.match(await nat64.decide({ host: '64:ff9b:1::7f00:1', port: 443 }), { ok: false }, 'the local-use prefix is another prefix');
  t.match(await nat64.decide({ host: '::ffff:0:127.0.0.1', port: 8080 }), { ok: true }, '* allows anything');
});

t.test('a rule whose host is an IP in another spelling is a config error, not a name rule that never matches', async (t) => {
  const spelled: [string, string][] = [['127.2:80', '127.0.0.2'], ['0x7f.0.0.1:80', '127.0.0.1'], ['2130706434:80', '127.0.0.2'], ['127.0.0.010:80', '127.0.0.8']];
  for (const [rule, ip] of spelled) {
    t.throws(() => parseAllowRules([rule], 'test'), new RegExp(`is the IP address ${ip.replace(/\./g, '\\.')}: write it so`), rule);
  }
  t.throws(() => parseAllowRules(['08.1:80'], 'test'), /"08\.1": /, 'a numeric host that is no address');
  t.doesNotThrow(() => parseAllowRules(['db1.internal:5432', '1password.example:443', '127.0.0.1:80'], 'test'), 'names with digits, and the canonical form, are fine');
  const all = new AllowList(parseAllowRules(['[::ffff:0:0/96]:22'], 'test'));
  t.match(await all.decide({ host: '10.1.2.3', port: 22 }), { ok: true }, '[::ffff:0:0/96] is every IPv4 address, as it spells');
});

t.test('a name with a trailing dot is looked up without it, as the name rule it matches', async (t) => {
  const rules = new AllowList(parseAllowRules(['localhost:80'], 'test'));
  const asked: string[] = [];
  t.match(await rules.decide({ host: 'LOCALHOST.', port: 80 }, async (h) => { asked.push(h); return ['127.0.0.1']; }), { ok: true });
  t.same(asked, ['LOCALHOST'], 'the resolver is asked for the name without its dot');
});

t.test('a target no rule could allow is refused without a lookup', async (t) => {
  const rules = new AllowList(parseAllowRules(['10.0.0.0/8:22', 'db.internal:5432-5433'], 'test'));
  let lookups = 0;
  const resolve = async (): Promise<string[]> => { lookups++; return ['10.1.2.3']; };
  t.match(await rules.decide({ host: 'anything.example', port: 80 }, resolve), { ok: false, why: /no --allow rule covers/ });
  t.match(await rules.decide({ host: 'other.internal', port: 5432 }, resolve), { ok: false, why: /no --allow rule covers/ }, 'a name rule covers its own name only');
  t.equal(lookups, 0, 'neither was looked up');
  t.match(await rules.decide({ host: 'DB.internal.', port: 5433 }, resolve), { ok: true }, 'the named host, in any case, with a trailing dot');
  t.match(await rules.decide({ host: 'anything.example', port: 22 }, resolve), { ok: true, address: '10.1.2.3' }, 'a CIDR rule at that port: resolved, then checked');
  t.equal(lookups, 2);
});

t.test('sourceKey: IPv4 (also mapped) as itself, IPv6 as its /64, anything else unchanged', async (t) => {
  t.equal(sourceKey('203.0.113.7'), '203.0.113.7');
  t.equal(sourceKey('::ffff:203.0.113.7'), '203.0.113.7', 'IPv4-mapped, as a dual-stack socket spells it');
  t.equal(sourceKey('::FFFF:cb00:7107'), '203.0.113.7');
  t.equal(sourceKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  t.equal(sourceKey('2001:0db8:0001:0002::1'), '2001:db8:1:2::/64', 'one /64, however spelled');
  t.equal(sourceKey('2001:db8::1'), '2001:db8::/64');
  t.equal(sourceKey('::1'), '::/64');
  t.equal(sourceKey('fe80::1%eth0'), 'fe80::/64', 'the zone does not count');
  t.equal(sourceKey(''), '');
  t.equal(sourceKey('not:an:address::x'), 'not:an:address::x');
});

t.test('a bind address may be the unspecified one; otherwise a bind is read as a target is', async (t) => {
  for (const text of ['0.0.0.0', '::ffff:0.0.0.0']) t.same(parseBindIp(text), { address: '0.0.0.0', family: 'ipv4' }, text);
  for (const text of ['::', '0:0::0', '0000:0:0:0:0:0:0:0']) t.same(parseBindIp(text), { address: '::', family: 'ipv6' }, text);
  t.same(parseBindIp('::FFFF:7f00:1'), { address: '127.0.0.1', family: 'ipv4' }, 'mapped is IPv4');
  t.match(parseBindIp('::7f00:1'), /IPv4-compatible/, 'compatible is still refused');
  t.match(parseBindIp('::1%eth0'), /zone/, 'a zone only on link-local');
  t.same(parseBindIp('fe80::1%eth0'), { address: 'fe80::1', family: 'ipv6', zone: 'eth0' });
});

t.test('a bind on every interface matches * or a rule naming it, not a network containing it', async (t) => {
  const list = new AllowList(parseAllowRules(['0.0.0.0/0:1', '[::/0]:1', '10.0.0.0/8:2', '*:3', '0.0.0.0:4', '[::]:5'], 'test'));
  const any4 = parseBindIp('0.0.0.0') as IpAddress;
  const any6 = parseBindIp('::') as IpAddress;
  t.notOk(list.matchBind(any4, 1), '0.0.0.0/0');
  t.notOk(list.matchBind(any6, 1), '[::/0]');
  t.notOk(list.matchBind(any4, 2), '10.0.0.0/8');
  t.ok(list.matchBind(any4, 3) && list.matchBind(any6, 3), '*');
  t.ok(list.matchBind(any4, 4), '0.0.0.0');
  t.notOk(list.matchBind(any6, 4), '0.0.0.0 is not [::]');
  t.ok(list.matchBind(any6, 5), '[::]');
  t.ok(list.matchBind(parseBindIp('10.1.2.3') as IpAddress, 1), 'a network still covers its own addresses');
});

t.test('unmappedAddress: a dual-stack socket\'s IPv4 address in plain form, anything else as it is', (t) => {
  t.equal(unmappedAddress('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(unmappedAddress('::FFFF:7f00:1'), '127.0.0.1', 'hex spelling too');
  t.equal(unmappedAddress('127.0.0.1'), '127.0.0.1');
  t.equal(unmappedAddress('::1'), '::1');
  t.equal(unmappedAddress('2001:db8::1'), '2001:db8::1');
  t.equal(unmappedAddress(''), '');
  t.end();
});
