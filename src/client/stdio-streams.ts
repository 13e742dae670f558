/**
 * stdin and stdout as one Node stream pair, for a --stdio stream the engine
 * cannot carry by fd (the js engine; a TTY or a file): reads come from
 * stdin, writes go to stdout, end() closes stdout so its reader sees EOF
 * while stdin may still be read (half-close).
 */
import { closeSync, constants as fsConstants, createWriteStream, fstatSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { Duplex, Readable, Writable } from 'node:stream';

export const STDIN = 0;
export const STDOUT = 1;

/** Whether `fd` is a pipe or a socket (what epoll, hence the native engine, can carry). */
export function pollableFd(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

/**
 * Closes `fd` (0 or 1) for good and puts /dev/null in its place: the reader
 * of a pipe sees EOF only once no copy of its write end is open, and a later
 * open() must not land on fd 0 or 1, where anything writing to "stdout" by
 * number would reach it. (The lowest free fd is taken; another thread
 * opening one in between would only leave /dev/null on a higher fd.)
 */
function replaceWithNull(fd: number): void {
  try {
    closeSync(fd);
    const nul = openSync('/dev/null', fd === STDIN ? 'r' : 'w');
    if (nul !== fd) closeSync(nul);
  } catch {
    // Already closed: nothing to replace.
  }
}

/** After the engine took copies of fds 0 and 1: ours go, so the engine's close of stdout is the reader's EOF. */
export function detachStdio(): void {
  replaceWithNull(STDIN);
  replaceWithNull(STDOUT);
}

/**
 * fd 0 or 1 (a pipe or socket) as a net.Socket that leaves the caller's
 * file description as it was: the shell and other processes share it, and
 * libuv makes what it polls non-blocking. A pipe is opened anew through
 * /proc (on Linux a description of our own of the same pipe); a socket has
 * no such thing, so its description is put back to blocking when we are
 * done with it (`shared`; we cannot read what it was, blocking is the norm).
 */
function pollableEnd(fd: number, write: boolean): { socket: Socket; shared: boolean } {
  if (!fstatSync(fd).isFIFO()) return { socket: new Socket({ fd, readable: !write, writable: write }), shared: true };
  const own = openSync(`/proc/self/fd/${fd}`, (write ? fsConstants.O_WRONLY : fsConstants.O_RDONLY) | fsConstants.O_NONBLOCK);
  return { socket: new Socket({ fd: own, readable: !write, writable: write }), shared: false };
}

/** Puts a shared socket's description back to blocking (see pollableEnd). */
function restoreBlocking(socket: Socket): void {
  const handle = (socket as unknown as { _handle?: { setBlocking?: (on: boolean) => number } | null })._handle;
  handle?.setBlocking?.(true);
}

/** Whether fds 0 and 1 are one socket or pipe (socat EXEC:, inetd). */
function sameFile(a: number, b: number): boolean {
  try {
    const x = fstatSync(a);
    const y = fstatSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * stdin/stdout as the Duplex the js engine carries as a stream's local end
 * (it uses the stream side of a net.Socket, and setNoDelay/resetAndDestroy).
 * Throws when a pipe cannot be opened anew (stdout's reader gone: ENXIO).
 */
export class StdioDuplex extends Duplex {
  private readonly input: Readable;
  private readonly output: Writable;
  /** stdout is a pipe or socket: closing fd 1 is what tells its reader we are done. */
  private readonly closeOutput: boolean;
  /** Shared socket descriptions to put back to blocking: stdin's at the end, stdout's once it is closed unless it is stdin's too. */
  private readonly restoreInput: boolean;
  private readonly restoreOutput: boolean;
  private released = false;

  constructor() {
    super({ allowHalfOpen: true });
    this.closeOutput = pollableFd(STDOUT);
    // A pipe or socket is read and written without blocking; a TTY or a file through Node's stdin and fs (libuv cannot poll those).
    const input = pollableFd(STDIN) ? pollableEnd(STDIN, false) : { socket: process.stdin, shared: false };
    const output = this.closeOutput ? pollableEnd(STDOUT, true) : { socket: createWriteStream('', { fd: STDOUT, autoClose: false }), shared: false };
    this.input = input.socket;
    this.output = output.socket;
    this.restoreInput = input.shared;
    this.restoreOutput = output.shared && !(input.shared && sameFile(STDIN, STDOUT));
    this.input.pause();
    this.input.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) this.input.pause();
    });
    this.input.on('end', () => this.push(null));
    this.input.on('error', (err) => this.destroy(err));
    this.output.on('error', (err) => this.destroy(err));
  }

  override _read(): void {
    this.input.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.output.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.output.end(() => {
      this.releaseOutput();
      cb();
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.input.pause();
    if (this.input !== process.stdin) {
      if (this.restoreInput) restoreBlocking(this.input as Socket);
      this.input.destroy();
    }
    this.releaseOutput();
    cb(err);
  }

  private releaseOutput(): void {
    if (this.released) return;
    this.released = true;
    if (!this.closeOutput) return;
    // libuv never closes fds 0-2 itself: once its handle is gone, the fd is closed here.
    this.output.once('close', () => replaceWithNull(STDOUT));
    if (this.restoreOutput) restoreBlocking(this.output as Socket);
    this.output.destroy();
  }

  setNoDelay(): this {
    return this;
  }

  resetAndDestroy(): this {
    return this.destroy();
  }
}
