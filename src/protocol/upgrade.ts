/**
 * The WebSocket opening handshake as text (RFC 6455 §4), both sides: the
 * request a client sends, the 101 a server answers, and the checks each side
 * makes of the other's. Pure: no sockets. The server's request checks
 * (server/upgrade-check.ts) and the client's I/O (client/raw-upgrade.ts)
 * build on it.
 */
import { createHash } from 'node:crypto';
import { TwsError } from '../util/errors';
import { FEATURES_HEADER, SUBPROTOCOL } from './constants';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a client's key (RFC 6455 §4.2.2). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/**
 * The 101 response selecting tws2, for engines that write it themselves; `features` go in Tws-Features.
 * `subprotocol` null: none selected (a tws-rust session, docs/legacy.md).
 */
export function upgradeResponse(key: string, features: readonly string[] = [], subprotocol: string | null = SUBPROTOCOL): string {
  const offered = features.length > 0 ? `Tws-Features: ${features.join(', ')}\r\n` : '';
  const selected = subprotocol === null ? '' : `Sec-WebSocket-Protocol: ${subprotocol}\r\n`;
  return 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n${selected}${offered}\r\n`;
}

/** What a server's 101 offers in Tws-Features (lower-cased; none from a server that predates it). */
export function offeredFeatures(headers: Record<string, string | string[] | undefined>): string[] {
  const v = headers[FEATURES_HEADER];
  const text = Array.isArray(v) ? v.join(',') : v ?? '';
  return text.split(',').map((f) => f.trim().toLowerCase()).filter((f) => f !== '');
}

/** The headers of our upgrade request beyond the caller's; `subprotocol` null offers none (tws-rust). */
export function upgradeHeaders(key: string, subprotocol: string | null = SUBPROTOCOL): Record<string, string> {
  return {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
    ...(subprotocol === null ? {} : { 'Sec-WebSocket-Protocol': subprotocol }),
  };
}

/** What is wrong with a 101 answer to an upgrade sent with `key` (offering `subprotocol`); '' when nothing is. */
export function upgradeProblem(headers: Record<string, string | string[] | undefined>, key: string, subprotocol: string | null = SUBPROTOCOL): string {
  if (headers['sec-websocket-accept'] !== acceptKey(key)) return 'bad Sec-WebSocket-Accept from the server';
  if (subprotocol === null) {
    if (headers['sec-websocket-protocol'] !== undefined) return 'server selected a subprotocol we did not offer';
  } else if (headers['sec-websocket-protocol'] !== subprotocol) return `server did not select the ${subprotocol} subprotocol`;
  if (headers['sec-websocket-extensions']) return 'server negotiated an extension we did not offer';
  return '';
}

/** The upgrade request as bytes, for an engine that writes it itself (native TLS). */
export function upgradeRequest(url: URL, headers: Record<string, string>, key: string): Buffer {
  const all: Record<string, string> = { Host: url.host, ...headers, ...upgradeHeaders(key) };
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`];
  for (const [name, value] of Object.entries(all)) {
    // The config loader already refuses these; a header must never smuggle a line break.
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new TwsError('TWS_ERR_CONFIG', `header ${JSON.stringify(name)} holds a line break`);
    lines.push(`${name}: ${value}`);
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** Status and headers (names lower-cased, repeats joined) of an HTTP/1.x response head; undefined if it is not one. */
export function parseResponseHead(head: string): { status: number; headers: Record<string, string> } | undefined {
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number(m[1]), headers };
}
