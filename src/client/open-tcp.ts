/**
 * A plain TCP connection to the server, directly or through the HTTP CONNECT
 * proxy, for an engine that runs TLS over it itself.
 */
import { connect, Socket } from 'node:net';
import { TwsError } from '../util/errors';
import { viaProxy } from './proxy';

/** Connects to host:port (through `proxy` when given) within `timeoutMs`; rejects with a one-line reason. */
export function openTcp(host: string, port: number, timeoutMs: number, proxy?: URL): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (proxy) {
      viaProxy(proxy, timeoutMs)({ host, port }, (err, socket) => (err || !socket ? reject(err ?? new TwsError('TWS_ERR_CONNECT', 'proxy: no socket')) : resolve(socket)));
      return;
    }
    const socket = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => giveUp(new TwsError('TWS_ERR_CONNECT', `no connection within ${timeoutMs} ms`)), timeoutMs);
    const giveUp = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', (err: NodeJS.ErrnoException) => giveUp(new TwsError('TWS_ERR_CONNECT', err.code ?? err.message)));
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);  // the engine takes the socket over on this turn
      resolve(socket);
    });
  });
}
