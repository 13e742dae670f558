/**
 * stdin and stdout as one Node stream pair, for a --stdio stream the engine
 * cannot carry by fd (the js engine; a TTY or a file): reads come from
 * stdin, writes go to stdout, end() closes stdout so its reader sees EOF
 * while stdin may still be read (half-close).
 */
import { closeSync, createWriteStream, fstatSync, openSync } from 'node:fs';
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
 * stdin/stdout as the Duplex the js engine carries as a stream's local end
 * (it uses the stream side of a net.Socket, and setNoDelay/resetAndDestroy).
 */
export class StdioDuplex extends Duplex {
  private readonly input: Readable = process.stdin;
  private readonly output: Writable;
  /** stdout is a pipe or socket: closing fd 1 is what tells its reader we are done. */
  private readonly closeOutput: boolean;
  private released = false;

  constructor() {
    super({ allowHalfOpen: true });
    this.closeOutput = pollableFd(STDOUT);
    // A pipe or socket is written without blocking; a TTY or a file through fs (libuv cannot poll those).
    this.output = this.closeOutput ? new Socket({ fd: STDOUT, readable: false, writable: true }) : createWriteStream('', { fd: STDOUT, autoClose: false });
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
    this.releaseOutput();
    cb(err);
  }

  private releaseOutput(): void {
    if (this.released) return;
    this.released = true;
    if (!this.closeOutput) return;
    // libuv never closes fds 0-2 itself: once its handle is gone, the fd is closed here.
    this.output.once('close', () => replaceWithNull(STDOUT));
    this.output.destroy();
  }

  setNoDelay(): this {
    return this;
  }

  resetAndDestroy(): this {
    return this.destroy();
  }
}
