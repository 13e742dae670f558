/**
 * Connects the local side of a stream the peer asked for and answers the
 * engine's open request: accept with the socket, or RESET 2 (connect
 * failed) / 3 (timed out) with why. Shared by the server (connect-target.ts,
 * after its policy) and the client (reverse tunnels, to its own targets).
 */
import type { LookupFunction } from 'node:net';
import { connect, Socket } from 'node:net';
import { ResetCode } from '../protocol/constants';
import type { OpenRequest } from '../engine/types';
import type { HostPort } from '../util/address';

/** How connect errors map to RESET codes (anything else: connect failed). */
const REFUSALS: Record<string, number> = {
  ECONNREFUSED: ResetCode.CONNECT_FAILED,
  EHOSTUNREACH: ResetCode.CONNECT_FAILED,
  ENETUNREACH: ResetCode.CONNECT_FAILED,
  ENOTFOUND: ResetCode.CONNECT_FAILED,
  ETIMEDOUT: ResetCode.TIMEOUT,
};

export interface DialHooks {
  /** Resolves a name (the server counts its lookups); Node's default when absent. */
  lookup?: LookupFunction;
  /** The socket could not even be created, so `lookup` never ran. */
  notStarted?(): void;
}

/** Connects `hp` within `timeoutMs`, then accepts `req` with the socket or rejects it; nothing if the peer cancelled first. */
export function dialRequest(req: OpenRequest, hp: HostPort, timeoutMs: number, hooks: DialHooks = {}): void {
  let socket: Socket;
  try {
    socket = connect({ host: hp.host, port: hp.port, allowHalfOpen: true, ...(hooks.lookup ? { lookup: hooks.lookup } : {}) });
  } catch (err) {
    hooks.notStarted?.();
    req.reject(ResetCode.CONNECT_FAILED, `connect failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return;
  }
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
