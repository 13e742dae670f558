/**
 * Turns an upgraded connection into a `ws` WebSocket for the js engine, as
 * ws's own WebSocketServer.completeUpgrade does (a WebSocket made without an
 * address, then setSocket), but for either side: the control plane has
 * already done the handshake, whichever side it is on.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { MAX_MESSAGE } from '../../protocol/constants';
import type { Role } from '../types';

/** ws's setSocket, which its type declarations leave out. */
interface Settable {
  _isServer: boolean;
  _readyState: number;
  setSocket(socket: Socket, head: Buffer, o: object): void;
  /** Emits 'close' (1006) on a WebSocket that never got a socket. */
  emitClose(): void;
}

// What ws's WebSocketServer and client default to, except: permessage-deflate
// off (negotiated by nobody: the handshake offers no extension), and no
// automatic pongs (the session answers pings itself, keeping only the latest
// pong owed).
const CONSTRUCT = { autoPong: false, closeTimeout: 30_000 };
const RECEIVE = {
  allowSynchronousEvents: true,
  maxBufferedChunks: 256 * 1024,
  maxFragments: 16 * 1024,
  maxPayload: MAX_MESSAGE,
  skipUTF8Validation: false,
};

/**
 * A WebSocket over `socket` whose handshake is complete: `preamble` (a
 * server's 101) is written first, `head` (bytes read past the HTTP head) read
 * first. A client masks what it sends and expects unmasked frames. A socket
 * already closed gives a WebSocket that closes (1006) on the next turn.
 */
export function upgradedWebSocket(socket: Socket, head: Buffer, preamble: Buffer, role: Role): WebSocket {
  // No address: ws makes no connection of its own (its type declarations only know the client form).
  const ws = new WebSocket(null as unknown as string, undefined, CONSTRUCT);
  const settable = ws as unknown as Settable;
  // A WebSocket made without an address is a server's; a client's must mask.
  settable._isServer = role === 'server';
  if (socket.destroyed || !socket.readable || !socket.writable) {
    // The peer went (FIN or error) before the session could start: as ws's server does, drop it.
    socket.destroy();
    // CLOSING until then, so that close() and send() are no-ops rather than a handshake to abort.
    settable._readyState = WebSocket.CLOSING;
    setImmediate(() => settable.emitClose());
    return ws;
  }
  if (preamble.length > 0) socket.write(preamble);
  settable.setSocket(socket, head, RECEIVE);
  return ws;
}
