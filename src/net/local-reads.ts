/**
 * Reading a local socket only when asked to, as the native engine reads a
 * local fd only while its pump has room. Node's Readable reads ahead of its
 * consumer: a paused socket still fills its buffer to the high-water mark
 * (16 KiB, plus the 64 KiB read that crosses it), and pause() leaves the
 * socket's reads started, so every paused socket could hold ~80 KiB that no
 * queue counts. Here a local socket has no read-ahead (high-water mark 0:
 * Node reads nothing nobody waits for), and stopping it stops its handle's
 * reads at once (as Node's own pause() does for a socket with an `onread`
 * buffer, and its HTTP server for sockets it consumes): what the socket was
 * not asked for stays in the kernel. These are Node's internals, as
 * websocket.ts uses ws's: test/e2e/held-memory.test.ts would see them change.
 */
import type { Socket } from 'node:net';

/** The parts of a net.Socket that stopping and starting its reads use. */
interface Internals {
  _readableState?: { highWaterMark: number };
  _handle?: { reading?: boolean; readStart?(): number; readStop?(): number } | null;
}

/** `local` reads nothing until startReading(): no read-ahead, now or later. */
export function readOnlyWhenAsked(local: Socket): void {
  const state = (local as unknown as Internals)._readableState;
  if (state) state.highWaterMark = 0;
  stopReading(local);
}

/** `local` stops reading now: what it was not asked for stays in the kernel. */
export function stopReading(local: Socket): void {
  local.pause();
  const handle = (local as unknown as Internals)._handle;
  if (handle?.reading && handle.readStop) {
    handle.reading = false;
    handle.readStop();
  }
}

/** `local` reads again; its chunks come as 'data' events. */
export function startReading(local: Socket): void {
  local.resume();
  // Node's Readable may think a read already started (it was stopped before any data came): start the handle itself.
  const handle = (local as unknown as Internals)._handle;
  if (handle && !handle.reading && handle.readStart && !local.destroyed && !local.connecting) {
    handle.reading = true;
    // As Node's own start of reads: a socket that cannot read is done (its 'close' ends the stream).
    if (handle.readStart() !== 0) local.destroy();
  }
}
