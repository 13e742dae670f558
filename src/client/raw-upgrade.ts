/**
 * The client's WebSocket handshake done with `http.request`, for engines
 * that take over the raw socket: unlike `ws`, the `upgrade` event hands us
 * the socket and every byte read past the 101 response (`head`).
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { SUBPROTOCOL } from '../protocol/constants';
import { acceptKey } from '../server/upgrade-check';

export class UpgradeError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/** Upgrades `url` (ws://) to a tws2 WebSocket; resolves with the socket and the bytes after the 101. */
export function rawUpgrade(
  url: URL,
  headers: Record<string, string>,
  timeoutMs: number,
  createConnection?: (opts: object, cb: (err: Error | null, socket?: Socket) => void) => undefined,
): Promise<{ socket: Socket; head: Buffer }> {
  const key = randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || 80,
      path: `${url.pathname}${url.search}`,
      headers: {
        ...headers,
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Protocol': SUBPROTOCOL,
      },
      timeout: timeoutMs,
      ...(createConnection ? { createConnection: createConnection as never } : {}),
    });
    req.on('upgrade', (res, socket: Socket, head: Buffer) => {
      if (res.headers['sec-websocket-accept'] !== acceptKey(key)) {
        socket.destroy();
        return reject(new UpgradeError('bad Sec-WebSocket-Accept from the server'));
      }
      if (res.headers['sec-websocket-protocol'] !== SUBPROTOCOL) {
        socket.destroy();
        return reject(new UpgradeError(`server did not select the ${SUBPROTOCOL} subprotocol`));
      }
      if (res.headers['sec-websocket-extensions']) {
        socket.destroy();
        return reject(new UpgradeError('server negotiated an extension we did not offer'));
      }
      resolve({ socket, head });
    });
    req.on('response', (res) => {
      res.resume();
      req.destroy();
      reject(new UpgradeError(`server answered HTTP ${res.statusCode}`, res.statusCode));
    });
    req.on('timeout', () => req.destroy(new UpgradeError(`no answer to the upgrade within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof UpgradeError ? err : new UpgradeError(err.code ?? err.message)));
    req.end();
  });
}
