/**
 * Ending a local tcp socket abortively without leaking its fd. Node's
 * resetAndDestroy() is libuv's uv_tcp_close_reset(), which libuv does not
 * allow on a socket it was asked to shut down (end(), as a stream does when
 * the peer's FIN comes): while that shutdown is under way (until the next
 * turn of the loop, or for good while the socket's writes wait for a reader
 * that never reads) it refuses with EINVAL, and Node then emits 'error' and
 * drops the handle without closing it. The fd stays open with nothing left
 * to close it, and no 'close' comes. So a socket whose writable side was
 * ended is destroyed (closed) instead: it already sent, or is sending, its
 * FIN, and the kernel answers with an RST anyway if unread bytes wait in it
 * or more arrive.
 */
import type { Socket } from 'node:net';

/** `socket` is reset (RST) if it can be, else closed: destroyed either way, its fd closed. */
export function resetOrClose(socket: Socket): void {
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}
