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
  /** The parser setSocket made. */
  _receiver: Receiver;
}

/** ws's Receiver, as far as gatherFragments() uses it. */
interface Receiver {
  /** The longest message taken (checked at each frame's header); 0: any. */
  _maxPayload: number;
  /** The frame being parsed is its message's last. */
  _fin: boolean;
  /** The payloads of the message so far, kept until its last frame. */
  _fragments: Buffer[];
  /** Called after each data frame, once its payload is in _fragments (empty payloads are not). */
  dataMessage(cb: unknown): void;
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
 * first. A client masks what it sends and expects unmasked frames; a message
 * longer than `maxPayload` (default the TWS2 maximum) closes it with 1009. A socket
 * already closed gives a WebSocket that closes (1006) on the next turn.
 */
export function upgradedWebSocket(socket: Socket, head: Buffer, preamble: Buffer, role: Role, maxPayload = MAX_MESSAGE): WebSocket {
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
  settable.setSocket(socket, head, { ...RECEIVE, maxPayload });
  gatherFragments(settable._receiver);
  return ws;
}

/**
 * Changes the longest message `ws` takes from its next frame on (a longer one
 * closes it with 1009, as maxPayload does): a session that takes only a short
 * handshake first keeps an unauthenticated peer from making it hold more.
 */
export function setMaxPayload(ws: WebSocket, maxPayload: number): void {
  const receiver = (ws as unknown as Partial<Settable>)._receiver;
  if (receiver) receiver._maxPayload = maxPayload;
}

/**
 * ws keeps each fragment of a message until its last one comes, as a view
 * into the socket read it arrived in: a peer sending 1-byte fragments, each
 * in its own 64 KiB read (padded with pongs), would make us hold 64 KiB per
 * byte counted against maxPayload, for as long as it never ends the message.
 * So each fragment of an unfinished message is copied, as it comes, onto the
 * end of one buffer that doubles when full: what the message holds is at
 * most twice its bytes, whatever the reads and however many the fragments.
 */
function gatherFragments(receiver: Receiver): void {
  const dataMessage = receiver.dataMessage;
  let buf: Buffer | undefined;
  let len = 0;
  receiver.dataMessage = function (this: Receiver, cb: unknown): void {
    const fragments = this._fragments;
    const last = fragments[fragments.length - 1];
    if (this._fin) {
      // The message ends: ws concatenates (copies) its fragments, or hands on the one.
      buf = undefined;
      len = 0;
    } else if (last && (buf === undefined || last.buffer !== buf.buffer)) {
      // A fragment that is not already ours: appended to the message so far, which stands for all of it.
      if (!buf || len + last.length > buf.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(256, 2 * (buf?.length ?? 0), len + last.length));
        buf?.copy(grown, 0, 0, len);
        buf = grown;
      }
      last.copy(buf, len);
      len += last.length;
      this._fragments = [buf.subarray(0, len)];
    }
    dataMessage.call(this, cb);
  };
}
