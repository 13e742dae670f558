/**
 * UDP sends that cannot pile up in memory. Node keeps a datagram the kernel
 * does not take at once (a full send buffer) in a queue of its own, without
 * bound; a peer sending faster than a local socket can pass datagrams on
 * would grow it. The bytes handed to one socket and not yet sent are
 * counted: past `max` a datagram is dropped (UDP may lose; memory may not
 * grow) and `onDrop` hears of it.
 */
import type { Socket } from 'node:dgram';

/** Bytes of datagrams waiting in one socket's send queue before more are dropped. */
export const MAX_PENDING_UDP_BYTES = 256 * 1024;

/** A send function for `sock`: to its connected peer, or to `port`/`address`. */
export function boundedUdpSender(sock: Socket, onDrop?: () => void, max = MAX_PENDING_UDP_BYTES): (payload: Buffer, port?: number, address?: string) => void {
  let pending = 0;
  return (payload, port, address) => {
    if (pending + payload.length > max) {
      onDrop?.();
      return;
    }
    pending += payload.length;
    // The callback also keeps a failed send (EMSGSIZE, say) from becoming a socket error.
    const sent = (): void => { pending -= payload.length; };
    try {
      if (port === undefined) sock.send(payload, sent);
      else sock.send(payload, port, address, sent);
    } catch {
      sent();  // the socket closed meanwhile
    }
  };
}
