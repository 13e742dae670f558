/**
 * The client's WebSocket handshake, done once for both engines: with
 * `http.request` over a plain or Node TLS socket (its `upgrade` event hands
 * us the socket and every byte read past the 101, `head`), or written and
 * judged here when the engine runs TLS itself.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { connect as tlsConnect, ConnectionOptions } from 'node:tls';
import { SUBPROTOCOL } from '../protocol/constants';
import { acceptKey } from '../server/upgrade-check';
import { describeConnectError } from './connect-options';
import { viaProxy } from './proxy';

export class UpgradeError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/** The headers of our upgrade request beyond the caller's. */
function upgradeHeaders(key: string): Record<string, string> {
  return {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Protocol': SUBPROTOCOL,
  };
}

/** What is wrong with a 101 answer to an upgrade sent with `key`; '' when nothing is. */
export function upgradeProblem(headers: Record<string, string | string[] | undefined>, key: string): string {
  if (headers['sec-websocket-accept'] !== acceptKey(key)) return 'bad Sec-WebSocket-Accept from the server';
  if (headers['sec-websocket-protocol'] !== SUBPROTOCOL) return `server did not select the ${SUBPROTOCOL} subprotocol`;
  if (headers['sec-websocket-extensions']) return 'server negotiated an extension we did not offer';
  return '';
}

/** The upgrade request as bytes, for an engine that writes it itself (native TLS). */
export function upgradeRequest(url: URL, headers: Record<string, string>, key: string): Buffer {
  const all: Record<string, string> = { Host: url.host, ...headers, ...upgradeHeaders(key) };
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`];
  for (const [name, value] of Object.entries(all)) {
    // The config loader already refuses these; a header must never smuggle a line break.
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new UpgradeError(`header ${JSON.stringify(name)} holds a line break`);
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

/** How rawUpgrade reaches the server: through an HTTP CONNECT proxy, with Node's TLS (wss://), abortable. */
export interface UpgradeRoute {
  proxy?: URL;
  /** wss://: Node's TLS settings (roots, verification, SNI); absent for ws://. */
  tls?: ConnectionOptions;
  /** Aborts the attempt (the client is stopping). */
  signal?: AbortSignal;
}

/**
 * Upgrades `url` to a tws2 WebSocket with `http.request` (unlike ws's client,
 * its `upgrade` event exposes every byte read past the 101); resolves with
 * the socket (a TLSSocket for wss://) and those bytes (`head`).
 */
export function rawUpgrade(url: URL, headers: Record<string, string>, timeoutMs: number, route: UpgradeRoute = {}): Promise<{ socket: Socket; head: Buffer }> {
  const key = randomBytes(16).toString('base64');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (route.tls ? 443 : 80));
  const { tls, proxy } = route;
  const createConnection = proxy ? viaProxy(proxy, timeoutMs, tls) : tls ? () => tlsConnect({ host, port, ...tls, timeout: timeoutMs }) : undefined;
  return new Promise((resolve, reject) => {
    const req = request({
      host,
      port,
      path: `${url.pathname}${url.search}`,
      headers: { ...headers, ...upgradeHeaders(key) },
      timeout: timeoutMs,
      ...(route.signal ? { signal: route.signal } : {}),
      ...(createConnection ? { createConnection: createConnection as never } : {}),
    });
    req.on('upgrade', (res, socket: Socket, head: Buffer) => {
      const problem = upgradeProblem(res.headers, key);
      if (problem) {
        socket.destroy();
        return reject(new UpgradeError(problem));
      }
      resolve({ socket, head });
    });
    req.on('response', (res) => {
      res.resume();
      req.destroy();
      reject(new UpgradeError(`server answered HTTP ${res.statusCode}`, res.statusCode));
    });
    // Also where our createConnection made the socket (TLS, proxy), which the `timeout` option alone does not cover.
    req.setTimeout(timeoutMs);
    req.on('timeout', () => req.destroy(new UpgradeError(`no answer to the upgrade within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof UpgradeError ? err : new UpgradeError(describeConnectError(err))));
    req.end();
  });
}
