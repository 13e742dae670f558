/**
 * SOCKS5 messages (RFC 1928) and the username/password sub-negotiation
 * (RFC 1929): pure parsers and encoders, no I/O. Every parser takes the bytes
 * received so far and says `more` (incomplete, read on), `bad` (answer with
 * `reply` if given, then close) or `ok` with how many bytes the message used;
 * no message is longer than MAX_MESSAGE, so a caller never buffers more.
 */
import { isIP } from 'node:net';
import { formatHostPort } from '../../util/address';

export const VERSION = 5;
export const AUTH_VERSION = 1;

export const Method = { NONE: 0x00, USERPASS: 0x02, UNACCEPTABLE: 0xff } as const;
export const Command = { CONNECT: 0x01, BIND: 0x02, UDP_ASSOCIATE: 0x03 } as const;
export const Atyp = { IPV4: 0x01, DOMAIN: 0x03, IPV6: 0x04 } as const;

/** RFC 1928 §6 reply codes. */
export const Reply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_NOT_SUPPORTED: 0x08,
} as const;

/** The longest message either side of the negotiation sends: a request with a 255-byte name (4 + 1 + 255 + 2). */
export const MAX_MESSAGE = 262;

export type Parsed<T> =
  | { kind: 'more' }
  | { kind: 'bad'; why: string; reply?: number }
  | { kind: 'ok'; value: T; used: number };

const MORE = { kind: 'more' } as const;
const bad = (why: string, reply?: number): { kind: 'bad'; why: string; reply?: number } => ({ kind: 'bad', why, reply });

/** Client greeting: VER NMETHODS METHODS. */
export function parseGreeting(buf: Buffer): Parsed<{ methods: number[] }> {
  if (buf.length < 1) return MORE;
  if (buf[0] !== VERSION) return bad(`not SOCKS5 (version byte ${buf[0]})`);
  if (buf.length < 2) return MORE;
  const n = buf[1]!;
  if (n === 0) return bad('greeting offers no method', Method.UNACCEPTABLE);
  if (buf.length < 2 + n) return MORE;
  return { kind: 'ok', value: { methods: [...buf.subarray(2, 2 + n)] }, used: 2 + n };
}

/** The server's method choice: VER METHOD. */
export function encodeMethod(method: number): Buffer {
  return Buffer.from([VERSION, method]);
}

/** RFC 1929 request: VER ULEN UNAME PLEN PASSWD. */
export function parseAuth(buf: Buffer): Parsed<{ user: Buffer; pass: Buffer }> {
  if (buf.length < 1) return MORE;
  if (buf[0] !== AUTH_VERSION) return bad(`username/password version ${buf[0]}, not 1`);
  if (buf.length < 2) return MORE;
  const ulen = buf[1]!;
  if (ulen === 0) return bad('empty user name');
  if (buf.length < 3 + ulen) return MORE;
  const plen = buf[2 + ulen]!;
  if (plen === 0) return bad('empty password');
  const used = 3 + ulen + plen;
  if (buf.length < used) return MORE;
  return { kind: 'ok', value: { user: buf.subarray(2, 2 + ulen), pass: buf.subarray(3 + ulen, used) }, used };
}

/** RFC 1929 answer: VER STATUS (0 = success, anything else = failure and close). */
export function encodeAuthStatus(ok: boolean): Buffer {
  return Buffer.from([AUTH_VERSION, ok ? 0 : 1]);
}

export interface Address {
  atyp: number;
  /** IP text, or the domain name as sent (checked to be a plain host name). */
  host: string;
  port: number;
}

// A name the server can take as a target's host: letters, digits, '-', '_', '.' (punycode for IDN).
const NAME = /^[A-Za-z0-9_.-]{1,255}$/;

/** ATYP DST.ADDR DST.PORT at `off`; `used` counts from `off`. */
function parseAddress(buf: Buffer, off: number): Parsed<Address> {
  if (buf.length < off + 1) return MORE;
  const atyp = buf[off]!;
  let len: number;
  let host: string;
  if (atyp === Atyp.IPV4) {
    len = 4;
    if (buf.length < off + 1 + len + 2) return MORE;
    host = [...buf.subarray(off + 1, off + 5)].join('.');
  } else if (atyp === Atyp.IPV6) {
    len = 16;
    if (buf.length < off + 1 + len + 2) return MORE;
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + 1 + 2 * i).toString(16));
    // Through URL parsing for the canonical (compressed) spelling.
    host = new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
  } else if (atyp === Atyp.DOMAIN) {
    if (buf.length < off + 2) return MORE;
    const n = buf[off + 1]!;
    len = 1 + n;
    if (buf.length < off + 1 + len + 2) return MORE;
    host = buf.subarray(off + 2, off + 2 + n).toString('latin1');
    if (!NAME.test(host) && isIP(host) === 0) return bad('domain name is not a host name', Reply.GENERAL_FAILURE);
  } else {
    return bad(`address type ${atyp}`, Reply.ADDRESS_NOT_SUPPORTED);
  }
  const port = buf.readUInt16BE(off + 1 + len);
  return { kind: 'ok', value: { atyp, host, port }, used: 1 + len + 2 };
}

export interface Request extends Address {
  cmd: number;
}

/** Client request: VER CMD RSV ATYP DST.ADDR DST.PORT. */
export function parseRequest(buf: Buffer): Parsed<Request> {
  if (buf.length < 1) return MORE;
  if (buf[0] !== VERSION) return bad(`request version ${buf[0]}, not 5`, Reply.GENERAL_FAILURE);
  if (buf.length < 3) return MORE;
  if (buf[2] !== 0) return bad('reserved byte is not 0', Reply.GENERAL_FAILURE);
  const addr = parseAddress(buf, 3);
  if (addr.kind !== 'ok') return addr;
  return { kind: 'ok', value: { cmd: buf[1]!, ...addr.value }, used: 3 + addr.used };
}

/** The target a request names, as tws targets are spelled: `host:port`, `[v6]:port`. */
export function targetOf(a: Address): string {
  return formatHostPort(a.host, a.port);
}

function encodeAddress(host: string, port: number): Buffer {
  const v = isIP(host);
  let head: Buffer;
  if (v === 4) {
    head = Buffer.from([Atyp.IPV4, ...host.split('.').map(Number)]);
  } else if (v === 6) {
    head = Buffer.alloc(17);
    head[0] = Atyp.IPV6;
    const full = expandV6(host);
    for (let i = 0; i < 8; i++) head.writeUInt16BE(full[i]!, 1 + 2 * i);
  } else {
    const name = Buffer.from(host, 'latin1').subarray(0, 255);
    head = Buffer.concat([Buffer.from([Atyp.DOMAIN, name.length]), name]);
  }
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([head, p]);
}

/** The eight 16-bit groups of an IPv6 address (an embedded IPv4 tail included). */
function expandV6(host: string): number[] {
  let text = host;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [l, r] = text.split('::') as [string, string | undefined];
  const left = l ? l.split(':') : [];
  const right = r ? r.split(':') : [];
  const zeros = r === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}

/** Server reply: VER REP RSV ATYP BND.ADDR BND.PORT (default 0.0.0.0:0). */
export function encodeReply(rep: number, host = '0.0.0.0', port = 0): Buffer {
  return Buffer.concat([Buffer.from([VERSION, rep, 0]), encodeAddress(host, port)]);
}

export interface UdpDatagram extends Address {
  data: Buffer;
}

/** A UDP ASSOCIATE datagram (RFC 1928 §7): RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA; fragments are refused. */
export function parseUdp(buf: Buffer): Parsed<UdpDatagram> {
  if (buf.length < 4) return bad('datagram shorter than its header');
  if (buf[0] !== 0 || buf[1] !== 0) return bad('reserved bytes are not 0');
  if (buf[2] !== 0) return bad('fragmented datagram (FRAG is not 0)');
  const addr = parseAddress(buf, 3);
  if (addr.kind === 'more') return bad('datagram shorter than its header');
  if (addr.kind === 'bad') return addr;
  const used = 3 + addr.used;
  return { kind: 'ok', value: { ...addr.value, data: buf.subarray(used) }, used: buf.length };
}

/** Wraps an answer for the client: the §7 header with `host:port` as its source. */
export function encodeUdp(host: string, port: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(host, port), data]);
}
