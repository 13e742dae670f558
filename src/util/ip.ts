/**
 * The one parser for the IP addresses a peer names as a stream's target or a
 * resolver answers with. Every spelling of an address becomes one canonical
 * text, and that text is both what the allow-list checks and what gets
 * connected, so no spelling can be checked as one address and reach another:
 *
 * - IPv4 in every form getaddrinfo accepts (`127.1`, `0x7f.1`, `0177.0.0.1`,
 *   `2130706433`, `127.000.0.01`) is dotted decimal (`127.0.0.1`);
 * - IPv6 in any case, with leading zeros or a dotted tail, is RFC 5952 text;
 * - IPv4-mapped IPv6 (`::ffff:a.b.c.d`, any spelling) is its IPv4 address:
 *   the kernel connects it as IPv4;
 * - a zone id (`%eth0`) is kept, only on link-local `fe80::/10` addresses
 *   (it picks the interface, the address is checked without it).
 *
 * Refused, because what they reach is not what they say: a zone on any
 * other address, IPv4-compatible `::a.b.c.d` (deprecated; a tunnel may carry
 * it to IPv4), the unspecified address (`0.0.0.0`, `::`: the kernel connects
 * it to loopback), and a numeric host that is no IPv4 address
 * (`127.0.0.1.`, `08.1`, `256.0.0.1`).
 *
 * parseBindIp reads the address a listener binds (reverse tunnels) by the
 * same rules, except that the unspecified address is allowed there: binding
 * it means every interface, which is what it says.
 */

/** An IP address as checked and connected. */
export interface IpAddress {
  /** Canonical text, without the zone. */
  address: string;
  family: 'ipv4' | 'ipv6';
  /** The interface of a link-local IPv6 address. */
  zone?: string;
}

/** Labels getaddrinfo reads as numbers (inet_aton): decimal, octal (leading 0), hex (0x). */
const NUMERIC_HOST = /^(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+))*\.?$/i;
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const ZONE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * Parses `host` (brackets already removed): an IpAddress, a string saying
 * why the address is refused, or undefined when `host` is a name.
 */
export function parseIp(host: string): IpAddress | string | undefined {
  return parse(host, false);
}

/** Parses the address a listener binds: as parseIp, but `0.0.0.0` and `::` (every interface) are addresses too. */
export function parseBindIp(host: string): IpAddress | string | undefined {
  return parse(host, true);
}

/** Whether `host` is a loopback address (127.0.0.0/8, ::1) in any spelling, IPv4-mapped included. */
export function isLoopbackAddress(host: string): boolean {
  const ip = parseBindIp(host);
  if (typeof ip !== 'object') return false;
  return ip.family === 'ipv4' ? ip.address.startsWith('127.') : ip.address === '::1';
}

function parse(host: string, bind: boolean): IpAddress | string | undefined {
  if (host.includes(':') || host.includes('%')) return parseIpv6(host, bind);
  if (!NUMERIC_HOST.test(host)) return undefined;
  const n = inetAton(host);
  if (n === undefined) return 'not an IPv4 address';
  return ipv4(n, bind);
}

/**
 * What a peer's address (a socket's remoteAddress) is counted under by
 * per-source limits: an IPv4 address itself (also IPv4-mapped), and an
 * IPv6 address's /64 (`2001:db8:1:2::/64`), since one host usually holds a
 * whole /64 and could otherwise take a fresh address per try.
 */
export function sourceKey(remote: string): string {
  const pct = remote.indexOf('%');
  const g = remote.includes(':') ? ipv6Groups(pct < 0 ? remote : remote.slice(0, pct)) : undefined;
  if (!g) return remote;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join('.');
  return `${formatIpv6([...g.slice(0, 4), 0, 0, 0, 0])}/64`;
}

/**
 * A socket's address in plain form: an IPv4 address as a dual-stack socket
 * spells it (`::ffff:127.0.0.1`) becomes `127.0.0.1`; anything else is kept.
 */
export function unmappedAddress(addr: string): string {
  const ip = addr.includes(':') ? parseIp(addr) : undefined;
  return typeof ip === 'object' && ip.family === 'ipv4' ? ip.address : addr;
}

/** The text to connect to: the address, with `%zone` if it has one. */
export function ipText(ip: IpAddress): string {
  return ip.zone === undefined ? ip.address : `${ip.address}%${ip.zone}`;
}

function ipv4(n: number, bind: boolean): IpAddress | string {
  if (n === 0 && !bind) return 'the unspecified address is not a target';
  return { address: [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'), family: 'ipv4' };
}

/** What inet_aton makes of `text`: 1 to 4 parts, the last filling the bytes left; undefined if it is none. */
function inetAton(text: string): number | undefined {
  const parts = text.split('.').map((p) =>
    /^0x[0-9a-f]+$/i.test(p) ? parseInt(p.slice(2), 16) : /^0[0-7]*$/.test(p) ? parseInt(p, 8) : /^[1-9]\d*$/.test(p) ? Number(p) : NaN);
  if (parts.length > 4 || parts.some((p) => Number.isNaN(p))) return undefined;
  const last = parts.pop()!;
  if (parts.some((p) => p > 255) || last >= 2 ** (8 * (4 - parts.length))) return undefined;
  return parts.reduce((n, p, i) => n + p * 2 ** (24 - 8 * i), 0) + last;
}

function parseIpv6(host: string, bind: boolean): IpAddress | string {
  const pct = host.indexOf('%');
  const text = pct < 0 ? host : host.slice(0, pct);
  const zone = pct < 0 ? undefined : host.slice(pct + 1);
  const g = ipv6Groups(text);
  if (!g) return 'not an IP address';
  if (zone !== undefined && !((g[0]! & 0xffc0) === 0xfe80 && ZONE.test(zone))) return 'a zone id is only allowed on a link-local (fe80::/10) address';
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return ipv4(g[6]! * 65536 + g[7]!, bind);
  if (g.slice(0, 6).every((x) => x === 0)) {
    if (g[6] === 0 && g[7] === 0) {
      if (!bind) return 'the unspecified address is not a target';
    } else if (g[6] !== 0 || g[7] !== 1) return 'an IPv4-compatible address (::a.b.c.d) is not a target';
  }
  return { address: formatIpv6(g), family: 'ipv6', ...(zone === undefined ? {} : { zone }) };
}

/** The eight 16-bit groups of an IPv6 address (as inet_pton reads it), or undefined. */
function ipv6Groups(text: string): number[] | undefined {
  let s = text;
  const tail = /^(.*:)([^:]*\.[^:]*)$/.exec(s);
  if (tail) {
    if (!DOTTED_QUAD.test(tail[2]!)) return undefined;
    const [a, b, c, d] = tail[2]!.split('.').map(Number) as [number, number, number, number];
    s = `${tail[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] => (h === '' ? [] : h.split(':').map((x) => (/^[0-9a-f]{1,4}$/i.test(x) ? parseInt(x, 16) : NaN)));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if ([...head, ...rest].some((x) => Number.isNaN(x))) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  if (head.length + rest.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

/** RFC 5952: lower case, no leading zeros, the first longest run of two or more zero groups as `::`. */
function formatIpv6(g: number[]): string {
  let at = -1;
  let len = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > len) [at, len] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = g.map((x) => x.toString(16));
  return at < 0 ? hex.join(':') : `${hex.slice(0, at).join(':')}::${hex.slice(at + len).join(':')}`;
}
