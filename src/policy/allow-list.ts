/**
 * `--allow RULE`: which targets a session may reach. A rule is HOST:PORTS —
 * HOST `*`, an IP, a CIDR (`10.0.0.0/8`, `[fd00::/8]`) or a name
 * (`db.internal`); PORTS `*`, `N` or `N-M`. A server with no allow-list at
 * all lets streams go anywhere (it warns at start; the caller passes no
 * AllowList); an AllowList lets through only what a rule matches, so an
 * empty one (`allow: []`) lets nothing through. IP and CIDR rules are checked against the address the target
 * resolves to, and that address is what gets connected, so a name cannot
 * point past a CIDR rule (nor re-resolve to somewhere else after the check).
 */
import { BlockList, isIP } from 'node:net';
import { TwsError } from '../util/errors';
import { lookup } from 'node:dns/promises';
import { HostPort, splitHostPort } from '../util/address';
import { IpAddress, ipText, parseBindIp, parseIp } from '../util/ip';

type HostMatch = { kind: 'any' } | { kind: 'net'; list: BlockList; family: 'ipv4' | 'ipv6'; addr: string; prefix: number } | { kind: 'name'; name: string };

/**
 * IPv6 prefixes whose addresses a translator on the way turns into IPv4
 * ones: NAT64's well-known and local-use prefixes (RFC 6052, RFC 8215) and
 * IPv4-translated addresses (::ffff:0:a.b.c.d, RFC 2765). A target in one
 * of them reaches an IPv4 host, so a broad IPv6 rule (`[::/0]`) must not
 * let it through: only a rule within the prefix (`[64:ff9b::/96]:443`), or
 * `*`, does. (6to4 and Teredo addresses reach IPv6 hosts, through IPv4.)
 */
const TRANSLATED: readonly { prefix: number; list: BlockList }[] = ([['64:ff9b::', 96], ['64:ff9b:1::', 48], ['::ffff:0:0:0', 96]] as const)
  .map(([net, prefix]) => {
    const list = new BlockList();
    list.addSubnet(net, prefix, 'ipv6');
    return { prefix, list };
  });

/** Whether rule `host` may match `ip`: anything outside the translated prefixes; inside one, only a rule within it. */
function coversTranslated(host: { addr: string; prefix: number }, ip: IpAddress): boolean {
  if (ip.family !== 'ipv6') return true;
  const via = TRANSLATED.find((t) => t.list.check(ip.address, 'ipv6'));
  return !via || (host.prefix >= via.prefix && via.list.check(host.addr, 'ipv6'));
}

export interface AllowRule {
  text: string;
  host: HostMatch;
  ports: [number, number];
}

const NAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$/;

function parsePorts(text: string): [number, number] | string {
  if (text === '*') return [1, 65535];
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) return `"${text}" is not a port, a range N-M or *`;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) return `port range ${text} is out of order or out of 1-65535`;
  return [lo, hi];
}

function parseHost(text: string): HostMatch | string {
  if (text === '*') return { kind: 'any' };
  const [addr, prefixText] = text.split('/', 2) as [string, string | undefined];
  const family = isIP(addr);
  if (family) {
    const max = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= max)) return `"/${prefixText}" is not a prefix length for IPv${family}`;
    // Targets in ::ffff:0:0/96 are IPv4 addresses (src/util/ip.ts) and are checked as such: a rule
    // inside that range is its IPv4 rule (else it could never match).
    // (parseBindIp: ::ffff:0:0 itself, the unspecified address mapped, starts the range.)
    const mapped = family === 6 && prefix >= 96 ? parseBindIp(addr) : undefined;
    if (typeof mapped === 'object' && mapped.family === 'ipv4') return parseHost(`${mapped.address}/${prefix - 96}`);
    const list = new BlockList();
    list.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
    return { kind: 'net', list, family: family === 4 ? 'ipv4' : 'ipv6', addr, prefix };
  }
  if (prefixText !== undefined) return `"${addr}" is not an IP address`;
  if (!NAME.test(text)) return `"${text}" is not an IP, CIDR, host name or *`;
  // A numeric host in another spelling (127.1, 0x7f.0.0.1, 2130706433) would be a name rule no target ever matches:
  // targets are checked in canonical form.
  const numeric = parseIp(text);
  if (typeof numeric === 'string') return `"${text}": ${numeric}`;
  if (numeric) return `"${text}" is the IP address ${ipText(numeric)}: write it so`;
  return { kind: 'name', name: text.toLowerCase().replace(/\.$/, '') };
}

/** Parses one rule; returns an error message for a bad one. */
export function parseAllowRule(text: string): AllowRule | string {
  const t = text.trim();
  const split = splitHostPort(t, 'ports');
  if (typeof split === 'string') return `${split}, e.g. 10.0.0.0/8:22, db.internal:5432, [::1]:8080, *:443`;
  const { host: hostText, rest: portText } = split;
  if (t.startsWith('[') && isIP(hostText.split('/')[0]!) !== 6) return `"${hostText}" is not an IPv6 address`;
  const host = parseHost(hostText);
  if (typeof host === 'string') return host;
  const ports = parsePorts(portText);
  if (typeof ports === 'string') return ports;
  return { text: t, host, ports };
}

/** Parses a config value (one rule or a list of them); a bad rule is a config error naming `where`. */
export function parseAllowRules(value: unknown, where: string): AllowRule[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((item) => {
    const rule = typeof item === 'string' ? parseAllowRule(item) : 'expected a string like 10.0.0.0/8:22';
    if (typeof rule === 'string') throw new TwsError('TWS_ERR_CONFIG', `${where}: ${rule} in ${JSON.stringify(item)}`);
    return rule;
  });
}

/** `resolveFailed`: the name did not resolve, so no rule could be checked (not a denial as such). */
export type Decision = { ok: true; address: string; rule?: string } | { ok: false; why: string; resolveFailed?: boolean };

export class AllowList {
  constructor(readonly rules: readonly AllowRule[]) {}

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** The first rule that lets `name` (as the client asked) at `ip`:`port` through. */
  match(name: string, ip: IpAddress, port: number): AllowRule | undefined {
    const n = name.toLowerCase().replace(/\.$/, '');
    // An IPv6 rule never matches an IPv4 address (Node's BlockList would match
    // it through ::ffff:, so [::/0] would let every IPv4 target through), nor
    // an IPv6 address a translator turns into one (TRANSLATED), unless it names that prefix.
    return this.rules.find((r) => port >= r.ports[0] && port <= r.ports[1] && (
      r.host.kind === 'any' || (r.host.kind === 'name' && r.host.name === n) ||
      (r.host.kind === 'net' && r.host.family === ip.family && r.host.list.check(ip.address, ip.family) && coversTranslated(r.host, ip))));
  }

  /**
   * The first rule that lets a listener bind `ip`:`port`. The unspecified
   * address (every interface) is covered by `*` and by a rule naming exactly
   * it (`0.0.0.0:P`, `[::]:P`), not by a network that merely contains it
   * (`0.0.0.0/0` means any one IPv4 address, not all of them at once).
   */
  matchBind(ip: IpAddress, port: number): AllowRule | undefined {
    const rule = this.match(ip.address, ip, port);
    if (!rule || (ip.address !== '0.0.0.0' && ip.address !== '::')) return rule;
    return this.rules.find((r) => port >= r.ports[0] && port <= r.ports[1] && (r.host.kind === 'any' ||
      (r.host.kind === 'net' && r.host.family === ip.family && r.host.prefix === (ip.family === 'ipv4' ? 32 : 128) && r.host.list.check(ip.address, ip.family))));
  }

  /** Whether some rule could let `target` through: its port is in range, and the rule takes any host, addresses (checked once resolved), or this name. */
  mayAllow(target: HostPort): boolean {
    const n = target.host.toLowerCase().replace(/\.$/, '');
    return this.rules.some((r) => target.port >= r.ports[0] && target.port <= r.ports[1] && (r.host.kind !== 'name' || r.host.name === n));
  }

  /**
   * Resolves the target (names in TypeScript, all addresses) and picks the
   * first address a rule allows, each in its canonical form (src/util/ip.ts);
   * the caller connects to exactly that text. Addresses whose spelling is
   * refused are skipped. An empty list allows nothing (fail closed).
   */
  async decide(target: HostPort, resolve: (host: string) => Promise<string[]> = resolveAll): Promise<Decision> {
    if (this.empty) return { ok: false, why: 'the allow-list is empty: no target is allowed' };
    // No rule could let this host and port through, whatever it resolves to:
    // refused without a lookup, so the answers tell a peer nothing of which
    // names the server's DNS knows, and it cannot make the server look them up.
    if (!this.mayAllow(target)) return { ok: false, why: 'not allowed (no --allow rule covers this host and port)' };
    const literal = parseIp(target.host);
    if (typeof literal === 'string') return { ok: false, why: literal };
    let answers: string[];
    try {
      // Without the trailing dot a name rule ignores: `localhost.` would skip /etc/hosts, which pins `localhost`.
      answers = literal ? [ipText(literal)] : await resolve(target.host.replace(/\.$/, ''));
    } catch (err) {
      return { ok: false, why: `resolve failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, resolveFailed: true };
    }
    for (const answer of answers) {
      const ip = parseIp(answer);
      if (typeof ip !== 'object') continue;  // a spelling that would reach another address than it says
      const rule = this.match(target.host, ip, target.port);
      if (rule) return { ok: true, address: ipText(ip), rule: rule.text };
    }
    return { ok: false, why: `not allowed (resolved to ${answers.join(', ')}; no --allow rule matches)` };
  }
}

async function resolveAll(host: string): Promise<string[]> {
  const all = await lookup(host, { all: true, verbatim: true });
  return all.map((a) => a.address);
}
