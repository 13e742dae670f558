/**
 * How both engines take a tws-rust session (docs/legacy.md): on `ws`, in
 * TypeScript, whichever engine carries the TWS2 sessions. tws-rust's text
 * control messages and 6-character ids share nothing with the TWS2 mux, and
 * its sessions are the few left from a fleet being moved over, so one
 * implementation serves both engines; the native data plane stays TWS2 only.
 */
import type { Socket } from 'node:net';
import { validateSessionOptions } from '../options';
import type { LegacyOptions, LegacySessionHandle, SessionOptions } from '../types';
import { upgradedWebSocket } from '../js/websocket';
import { LegacySession } from './session';
export { legacyStats } from './session';
import { MAX_TEXT } from './wire';

/** Starts a tws-rust session on an upgraded connection (`preamble`: a server's 101, written first). */
export function adoptLegacy(socket: Socket, head: Buffer, preamble: Buffer, options: SessionOptions, legacy: LegacyOptions): LegacySessionHandle {
  validateSessionOptions(options);
  // Until the handshake is done only its one short Text message is taken (the session raises the limit then):
  // else every connection still shaking hands, unauthenticated, could make us hold a 1 MiB message.
  const session = new LegacySession(upgradedWebSocket(socket, head, preamble, options.role, MAX_TEXT), options, legacy);
  // ws hears the socket fail before it closes (1006), and says nothing of why: the session is told, as the js engine's is.
  socket.once('error', (err: NodeJS.ErrnoException) => session.connectionFailed(err.code ?? err.message));
  return session;
}
