/**
 * Decides whether an HTTP upgrade request may become a TWS2 session. Every
 * failure is answered with the same 404 (see respond404), so a prober learns
 * nothing; the reason goes to the log only.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { AUTH_HEADER, SUBPROTOCOL } from '../protocol/constants';
import { formatPeer } from '../util/address';

/**
 * Whether a request looks like a tws-rust client's (docs/legacy.md): no tws2
 * subprotocol offered and no Tws-Auth header. Only a server with --legacy
 * takes it as one; to others it is refused like any prober.
 */
export function isLegacyUpgrade(req: IncomingMessage): boolean {
  return !offered(req).includes(SUBPROTOCOL) && req.headers[AUTH_HEADER] === undefined;
}

function offered(req: IncomingMessage): string[] {
  return (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
}

/**
 * Checks method, path and the RFC 6455 headers (and, unless `legacy`, the
 * tws2 subprotocol and Tws-Auth); returns why it is refused, or undefined.
 */
export function checkUpgradeRequest(req: IncomingMessage, path: string, legacy = false): string | undefined {
  if (req.method !== 'GET') return `method ${req.method}`;
  const url = req.url ?? '';
  const pathname = url.split('?', 1)[0];
  if (pathname !== path) return `path ${JSON.stringify(url.slice(0, 100))}`;
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return 'not a websocket upgrade';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(key)) return 'bad Sec-WebSocket-Key';
  if (req.headers['sec-websocket-version'] !== '13') return 'unsupported Sec-WebSocket-Version';
  if (legacy) return undefined;
  if (!offered(req).includes(SUBPROTOCOL)) return `subprotocol ${SUBPROTOCOL} not offered`;
  if (req.headers[AUTH_HEADER] === undefined) return 'no Tws-Auth header';
  return undefined;
}

const NOT_FOUND = 'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nNot Found';

/** Answers an upgrade attempt with a plain 404 and closes the connection. */
export function respond404(socket: Duplex): void {
  respondAndClose(socket, NOT_FOUND);
}

/** An answer to a client that holds the password but finds no room: why, then the socket goes. */
export function respond503(socket: Duplex): void {
  respondAndClose(socket, 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
}

/**
 * Writes `answer` and ends the socket, then destroys it a second later
 * whatever the peer does: after an upgrade event Node times nothing out,
 * and a peer that never reads, or reads and keeps its half open, would
 * keep the fd (and its place under the connection limit) for good.
 */
function respondAndClose(socket: Duplex, answer: string): void {
  if (socket.destroyed) return;
  socket.end(answer);
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * The peer as logs show it: its own address first, always (what the socket
 * proves), then the first hop of an X-Forwarded-For header, quoted, since
 * anyone can send one: behind a proxy it names the client, otherwise it is
 * only what the peer claims, and must not read as where it came from.
 */
export function peerName(req: IncomingMessage): string {
  const xff = req.headers['x-forwarded-for'];
  const addr = formatPeer(req.socket);
  if (typeof xff !== 'string' || xff.length === 0) return addr;
  return `${addr} (X-Forwarded-For ${JSON.stringify(xff.split(',')[0]!.trim().slice(0, 64))})`;
}
