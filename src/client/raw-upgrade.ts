/**
 * The client's WebSocket handshake, done once for both engines: with
 * `http.request` over a plain or Node TLS socket (its `upgrade` event hands
 * us the socket and every byte read past the 101, `head`). The text of the
 * handshake and its checks are protocol/upgrade.ts.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { connect as tlsConnect, ConnectionOptions } from 'node:tls';
import { offeredFeatures, upgradeHeaders, upgradeProblem } from '../protocol/upgrade';
import { TwsError } from '../util/errors';
import { describeConnectError } from './connect-options';
import { viaProxy } from './proxy';

/** A client upgrade that failed (TWS_ERR_HANDSHAKE), with the HTTP status when the server answered one. */
export class UpgradeError extends TwsError {
  constructor(message: string, readonly status?: number) {
    super('TWS_ERR_HANDSHAKE', message);
    this.name = 'UpgradeError';
  }
}

/** How rawUpgrade reaches the server: through an HTTP CONNECT proxy, with Node's TLS (wss://), abortable. */
export interface UpgradeRoute {
  proxy?: URL;
  /** wss://: Node's TLS settings (roots, verification, SNI); absent for ws://. */
  tls?: ConnectionOptions;
  /** Aborts the attempt (the client is stopping). */
  signal?: AbortSignal;
  /** null: offer no subprotocol and expect none (a tws-rust server); default tws2. */
  subprotocol?: null;
}

/**
 * Upgrades `url` to a tws2 WebSocket with `http.request` (unlike ws's client,
 * its `upgrade` event exposes every byte read past the 101); resolves with
 * the socket (a TLSSocket for wss://), those bytes (`head`) and what the
 * server offers in Tws-Features.
 */
export function rawUpgrade(url: URL, headers: Record<string, string>, timeoutMs: number, route: UpgradeRoute = {}):
  Promise<{ socket: Socket; head: Buffer; features: string[] }> {
  const key = randomBytes(16).toString('base64');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (route.tls ? 443 : 80));
  const { tls, proxy } = route;
  const createConnection = proxy ? viaProxy(proxy, timeoutMs, tls) : tls ? () => tlsConnect({ host, port, ...tls }) : undefined;
  return new Promise((resolve, reject) => {
    const req = request({
      host,
      port,
      path: `${url.pathname}${url.search}`,
      headers: { ...headers, ...upgradeHeaders(key, route.subprotocol) },
      ...(route.signal ? { signal: route.signal } : {}),
      ...(createConnection ? { createConnection: createConnection as never } : {}),
    });
    // Where a direct wss:// attempt got to, so that a stall or a close in the TLS handshake is called that.
    let stage: 'tcp' | 'tls' | 'http' = tls && !proxy ? 'tcp' : 'http';
    req.on('socket', (socket: Socket) => {
      if (stage !== 'tcp') return;
      socket.once('connect', () => { stage = 'tls'; });
      socket.once('secureConnect', () => { stage = 'http'; });
    });
    // One deadline for the whole attempt (connect, proxy, TLS, answer), as ws's handshakeTimeout: a server trickling bytes cannot stretch it.
    const deadline = setTimeout(() => req.destroy(new UpgradeError(
      `${stage === 'tls' ? 'no TLS handshake' : 'no answer to the upgrade'} within ${timeoutMs} ms`)), timeoutMs);
    req.on('upgrade', (res, socket: Socket, head: Buffer) => {
      clearTimeout(deadline);
      const problem = upgradeProblem(res.headers, key, route.subprotocol);
      if (problem) {
        socket.destroy();
        return reject(new UpgradeError(problem));
      }
      resolve({ socket, head, features: offeredFeatures(res.headers) });
    });
    req.on('response', (res) => {
      clearTimeout(deadline);
      res.resume();
      req.destroy();
      reject(new UpgradeError(`server answered HTTP ${res.statusCode}`, res.statusCode));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(deadline);
      if (err instanceof UpgradeError) return reject(err);
      // The server hung up on our ClientHello (a plain port does): the words the native engine uses.
      const cut = stage === 'tls' && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      reject(new UpgradeError(cut ? 'connection closed during the TLS handshake' : describeConnectError(err)));
    });
    req.end();
  });
}
