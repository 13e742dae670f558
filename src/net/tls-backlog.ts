/**
 * A bound on what Node's TLS writes for a peer on its own. Records such as
 * TLS 1.3's KeyUpdate (update_requested) make OpenSSL write an answer for
 * each one it reads, straight to the socket below any stream we can see
 * (writableLength, ws's bufferedAmount stay 0): from a peer that sends them
 * and never reads, the answers pile up in libuv's write queue, about 2 MB a
 * second per connection, before any password is checked. The native engine
 * stops reading such a peer (native/io/tls_wire.cc); here the connection is
 * dropped once the queue passes a bound no honest peer comes near: what a
 * session queues for its peer is gated at 512 KiB (js engine) and 1 MiB
 * (tws-rust sessions), and an honest reader drains it.
 */
import type { TLSSocket } from 'node:tls';

export const TLS_BACKLOG_LIMIT = 2 * 1024 * 1024;
const CHECK_MS = 250;

/** Bytes written to the TLS connection's socket that the kernel has not taken yet (libuv's queue). */
function queued(socket: TLSSocket): number {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: number } | null })._handle;
  return handle?.writeQueueSize ?? 0;
}

/** Destroys `socket` (after `onDrop(bytes)`) if its write queue ever passes `limit`; watches until it closes. */
export function boundTlsBacklog(socket: TLSSocket, onDrop: (bytes: number) => void, limit = TLS_BACKLOG_LIMIT): void {
  const timer = setInterval(() => {
    const n = queued(socket);
    if (n <= limit) return;
    clearInterval(timer);
    onDrop(n);
    socket.destroy();
  }, CHECK_MS);
  timer.unref();
  socket.once('close', () => clearInterval(timer));
}
