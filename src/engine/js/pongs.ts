/**
 * Answering pings on a `ws` WebSocket made with autoPong: false (both
 * engines' js-side sessions): at most one pong is in the send queue, and of
 * the pings that arrive meanwhile only the latest is answered (RFC 6455
 * §5.5.3 allows it), so a peer that pings and never reads cannot make pongs
 * pile up: ws would queue each one, a few bytes on the wire and far more in
 * memory.
 */
import type { WebSocket } from 'ws';
import { own } from './stream';

/** A function to call with each ping's payload; `mask`: we are the client. */
export function pongAnswerer(ws: WebSocket, mask: boolean): (ping: Buffer) => void {
  let inFlight = false;
  let owed: Buffer | undefined;
  const answer = (ping: Buffer): void => {
    if (ws.readyState !== 1) return;
    // A ping's payload is a view into the socket read it came in (see own()): the pong may wait long in the send queue.
    if (inFlight) {
      owed = own(ping);
      return;
    }
    inFlight = true;
    ws.pong(own(ping), mask, () => {
      inFlight = false;
      const next = owed;
      owed = undefined;
      if (next) answer(next);
    });
  };
  return answer;
}
