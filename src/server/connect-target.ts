/**
 * Connects the server's side of a stream to its target and answers the
 * engine's open request: accept with the socket, or RESET with why.
 */
import { connect, Socket } from 'node:net';
import { ResetCode } from '../protocol/constants';
import type { OpenRequest } from '../engine/types';
import { parseHostPort } from '../util/address';

const REFUSALS: Record<string, number> = {
  ECONNREFUSED: ResetCode.CONNECT_FAILED,
  EHOSTUNREACH: ResetCode.CONNECT_FAILED,
  ENETUNREACH: ResetCode.CONNECT_FAILED,
  ENOTFOUND: ResetCode.CONNECT_FAILED,
  ETIMEDOUT: ResetCode.TIMEOUT,
};

/** Connects `req.target` within `timeoutMs`, then accepts or rejects the request. */
export function connectTarget(req: OpenRequest, timeoutMs: number): void {
  if (req.target === '') {
    req.reject(ResetCode.DENIED, 'no pinned target on this server');
    return;
  }
  const hp = parseHostPort(req.target);
  if (typeof hp === 'string') {
    req.reject(ResetCode.CONNECT_FAILED, `bad target: ${hp}`);
    return;
  }
  const socket: Socket = connect({ host: hp.host, port: hp.port, allowHalfOpen: true });
  let settled = false;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    req.signal.removeEventListener('abort', onAbort);
    return true;
  };
  const timer = setTimeout(() => {
    if (!settle()) return;
    socket.destroy();
    req.reject(ResetCode.TIMEOUT, `connect timed out after ${timeoutMs} ms`);
  }, timeoutMs);
  const onAbort = (): void => {
    if (settle()) socket.destroy();
  };
  req.signal.addEventListener('abort', onAbort);
  socket.once('connect', () => {
    if (!settle()) return;
    socket.removeAllListeners('error');
    req.accept(socket);
  });
  socket.once('error', (err: NodeJS.ErrnoException) => {
    if (!settle()) return;
    req.reject(REFUSALS[err.code ?? ''] ?? ResetCode.CONNECT_FAILED, `connect failed: ${err.code ?? err.message}`);
  });
}
