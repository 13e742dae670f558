/**
 * tws-rust 0.2's wire messages (docs/legacy.md), pure: no sockets, no clock.
 * Every packet is one WebSocket message: control as Text, data as Binary.
 *
 *   AUTH <MAC(body)>\n<body>          body = NOW <ms>\nTARGET <ip>:<port> (first message),
 *                                     NEW CONNECTION <id>, NEW UDP CONNECTION <id>
 *   CONNECTION <id> OK|CLOSED|PAUSE|RESUME   (not authenticated)
 *   P<id><payload>, U<id><datagram>   (Binary)
 *
 * MAC(b) = base64(HMAC-SHA256(key = password, msg = b)), padded. Everything
 * here treats its input as hostile: lengths are bounded, ids checked, MACs
 * compared in constant time, and a parse failure says why in words safe to
 * log (never echoing more than a capped, escaped piece of the input).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { peerText } from '../../util/log';

/** A stream id: exactly 6 characters of [A-Za-z0-9], as tws-rust draws them. */
export const ID_LENGTH = 6;
const ID = /^[A-Za-z0-9]{6}$/;
/** The longest Text message we take: the handshake is ~100 bytes; anything near this is not tws-rust. */
export const MAX_TEXT = 512;
/** The longest payload of one P message we take (tws-rust reads TCP in far smaller pieces). */
export const MAX_PAYLOAD = 1024 * 1024;
/** The longest Binary message: type byte, id, payload. */
export const MAX_BINARY = 1 + ID_LENGTH + MAX_PAYLOAD;
/** The largest UDP datagram (IPv4's limit). */
export const MAX_DATAGRAM = 65_507;
/** tws-rust's handshake window: a NOW further than this from our clock (either way) is refused (ms). */
export const CLOCK_WINDOW_MS = 5000;
/** The server's answer to a good handshake. */
export const HELLO = 'hello';
/** The length of a MAC in base64 (32 bytes, padded). */
const MAC_LENGTH = 44;

export type ConnectionState = 'OK' | 'CLOSED' | 'PAUSE' | 'RESUME';

/** One Text message, parsed. */
export type LegacyText =
  | { type: 'auth'; mac: string; body: string }
  | { type: 'connection'; id: string; state: ConnectionState }
  | { type: 'hello' };

/** What an authenticated body asks for. */
export type AuthBody =
  | { type: 'handshake'; now: number; target: string }
  | { type: 'new'; id: string; udp: boolean };

/** The MAC of `body` under `passwd`: base64 of HMAC-SHA256, padded (tws-rust's). */
export function legacyMac(passwd: string, body: string): string {
  return createHmac('sha256', Buffer.from(passwd, 'utf8')).update(body, 'utf8').digest('base64');
}

/** `AUTH <mac>\n<body>`. */
export function authMessage(passwd: string, body: string): string {
  return `AUTH ${legacyMac(passwd, body)}\n${body}`;
}

/** The first message of a client: its clock and the one target of the session (`ip:port`, IPv6 unbracketed). */
export function handshakeBody(nowMs: number, target: string): string {
  return `NOW ${nowMs}\nTARGET ${target}`;
}

/** `NEW CONNECTION <id>` or `NEW UDP CONNECTION <id>`. */
export function newConnectionBody(id: string, udp: boolean): string {
  return `NEW ${udp ? 'UDP ' : ''}CONNECTION ${id}`;
}

export function connectionMessage(id: string, state: ConnectionState): string {
  return `CONNECTION ${id} ${state}`;
}

/** Whether `id` is a well-formed stream id. */
export function isId(id: string): boolean {
  return ID.test(id);
}

/** A peer's string for a log line: capped (the sink escapes it). */
function shown(s: string): string {
  return JSON.stringify(peerText(s, 64));
}

/** Parses one Text message; a string says why it is not one we know. */
export function parseText(text: string): LegacyText | string {
  if (text.length > MAX_TEXT) return `text message of ${text.length} characters (at most ${MAX_TEXT})`;
  if (text === HELLO) return { type: 'hello' };
  if (text.startsWith('AUTH ')) {
    const nl = text.indexOf('\n');
    if (nl < 0) return 'AUTH without a body';
    const mac = text.slice(5, nl);
    if (mac.length !== MAC_LENGTH) return 'AUTH with a malformed MAC';
    return { type: 'auth', mac, body: text.slice(nl + 1) };
  }
  const m = /^CONNECTION (\S+) (OK|CLOSED|PAUSE|RESUME)$/.exec(text);
  if (m) {
    if (!isId(m[1]!)) return `bad stream id ${shown(m[1]!)}`;
    return { type: 'connection', id: m[1]!, state: m[2] as ConnectionState };
  }
  return `unknown message ${shown(text)}`;
}

/** Whether `mac` is the MAC of `body` under `passwd`, compared in constant time. */
export function macMatches(passwd: string, body: string, mac: string): boolean {
  const want = Buffer.from(legacyMac(passwd, body), 'latin1');
  const got = Buffer.from(mac, 'latin1');
  // Lengths are public (a MAC is always 44 characters); only equal lengths reach the constant-time compare.
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * The body of an AUTH whose MAC matched: the handshake (its target as
 * `host:port`, IPv6 bracketed as the rest of tws writes targets) or a new
 * stream. A string says why it is malformed.
 */
export function parseAuthBody(body: string): AuthBody | string {
  const hs = /^NOW (\d{1,16})\nTARGET (\S{1,300})$/.exec(body);
  if (hs) {
    const target = bracketTarget(hs[2]!);
    if (!target) return `bad TARGET ${shown(hs[2]!)}`;
    return { type: 'handshake', now: Number(hs[1]), target };
  }
  const nc = /^NEW (UDP )?CONNECTION (\S+)$/.exec(body);
  if (nc) {
    if (!isId(nc[2]!)) return `bad stream id ${shown(nc[2]!)}`;
    return { type: 'new', id: nc[2]!, udp: nc[1] !== undefined };
  }
  return `unknown authenticated message ${shown(body)}`;
}

/**
 * tws-rust's `ip:port` (the last `:` separates the port; IPv6 unbracketed,
 * bracketed also taken) as `host:port` / `[v6]:port`; undefined if malformed.
 */
export function bracketTarget(t: string): string | undefined {
  const colon = t.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const host = t.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = t.slice(colon + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535 || host === '') return undefined;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** tws-rust's spelling of a target: `ip:port` with IPv6 unbracketed (what its SocketAddr parser takes). */
export function unbracketTarget(ip: string, port: number): string {
  return `${ip.replace(/^\[|\]$/g, '')}:${port}`;
}

/** One Binary message, parsed: TCP payload (P) or a datagram (U). */
export interface LegacyData {
  kind: 'P' | 'U';
  id: string;
  payload: Buffer;
}

/** Parses one Binary message; a string says why it is malformed. */
export function parseBinary(buf: Buffer): LegacyData | string {
  if (buf.length > MAX_BINARY) return `binary message of ${buf.length} bytes (at most ${MAX_BINARY})`;
  if (buf.length < 1 + ID_LENGTH) return `binary message of ${buf.length} bytes is too short`;
  const kind = String.fromCharCode(buf[0]!);
  if (kind !== 'P' && kind !== 'U') return `unknown binary message type 0x${buf[0]!.toString(16).padStart(2, '0')}`;
  const id = buf.toString('latin1', 1, 1 + ID_LENGTH);
  if (!isId(id)) return 'bad stream id in a binary message';
  const payload = buf.subarray(1 + ID_LENGTH);
  if (kind === 'U' && payload.length > MAX_DATAGRAM) return `datagram of ${payload.length} bytes`;
  return { kind, id, payload };
}

/** The header of a P/U message, to send in front of `payload` (ws gathers the two into one message). */
export function dataHeader(kind: 'P' | 'U', id: string): Buffer {
  return Buffer.from(`${kind}${id}`, 'latin1');
}

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A new stream id from `random` bytes (6 of them; the bias of % 62 does not matter for ids). */
export function idFrom(random: Buffer): string {
  let id = '';
  for (let i = 0; i < ID_LENGTH; i++) id += ID_CHARS[random[i]! % ID_CHARS.length];
  return id;
}
