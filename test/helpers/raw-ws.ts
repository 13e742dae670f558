/**
 * A WebSocket peer at the byte level, on a plain TCP socket: writes the
 * upgrade request (with a real Tws-Auth header) and any frames in the same
 * write if asked, and parses whatever comes back. For tests of what a
 * server does with bytes `ws` would never send, or with a peer that never
 * reads.
 */
import { randomBytes } from 'node:crypto';
import { connect, Socket } from 'node:net';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { PASSWD } from './procs';

/**
 * One client frame, masked as RFC 6455 requires. `zeroKey` uses the key
 * 0 (still a masked frame, the payload unchanged): for floods built faster
 * than a per-byte mask loop allows.
 */
export function clientFrame(opcode: number, payload: Buffer, fin = true, zeroKey = false): Buffer {
  const n = payload.length;
  const len = n < 126 ? Buffer.from([0x80 | n]) : n <= 0xffff ? Buffer.from([0x80 | 126, n >> 8, n & 0xff])
    : Buffer.concat([Buffer.from([0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  const key = zeroKey ? Buffer.alloc(4) : randomBytes(4);
  const masked = Buffer.from(payload);
  if (!zeroKey) for (let i = 0; i < n; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode]), len, key, masked]);
}

/** A close frame's payload: code and reason (or `raw` bytes as they are). */
export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** Splits WebSocket frames off `buf` (a client's masked ones are unmasked); returns them and what is left. */
export function parseFrames(buf: Buffer): { frames: ServerFrame[]; rest: Buffer } {
  const frames: ServerFrame[] = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    const len7 = buf[at + 1]! & 0x7f;
    let h = 2;
    let n = len7;
    if (len7 === 126) {
      if (buf.length - at < 4) break;
      n = buf.readUInt16BE(at + 2);
      h = 4;
    } else if (len7 === 127) {
      if (buf.length - at < 10) break;
      n = Number(buf.readBigUInt64BE(at + 2));
      h = 10;
    }
    const masked = (buf[at + 1]! & 0x80) !== 0;
    const key = h;
    if (masked) h += 4;
    if (buf.length - at < h + n) break;
    const payload = buf.subarray(at + h, at + h + n);
    if (masked) {
      const plain = Buffer.from(payload);
      for (let i = 0; i < n; i++) plain[i]! ^= buf[at + key + (i % 4)]!;
      frames.push({ opcode: buf[at]! & 0x0f, payload: plain });
    } else {
      frames.push({ opcode: buf[at]! & 0x0f, payload });
    }
    at += h + n;
  }
  return { frames, rest: buf.subarray(at) };
}

export interface RawWs {
  socket: Socket;
  /** Everything received so far (the HTTP response head included). */
  received(): Buffer;
  /** Resolves once `pred` holds for what was received, or rejects after `ms`. */
  until(pred: (got: Buffer) => boolean, ms?: number): Promise<Buffer>;
  /** Resolves when the server closed the connection. */
  ended: Promise<void>;
  close(): void;
}

/**
 * Connects and sends the upgrade request followed by `after` in one write.
 * With `read: false` nothing is read from the socket at all (a peer that
 * never reads): then `received()` stays empty.
 */
export function rawWs(port: number, opts: { after?: Buffer; auth?: string; read?: boolean } = {}): Promise<RawWs> {
  const key = randomBytes(16).toString('base64');
  const request = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tws2\r\n` +
    `Tws-Auth: ${opts.auth ?? buildAuthHeader(PASSWD)}\r\n\r\n`;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const waiters: (() => void)[] = [];
    const ended = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    if (opts.read !== false) {
      socket.on('data', (c: Buffer) => {
        got = Buffer.concat([got, c]);
        for (const w of [...waiters]) w();
      });
    } else {
      socket.pause();
    }
    socket.once('connect', () => {
      socket.write(Buffer.concat([Buffer.from(request, 'latin1'), opts.after ?? Buffer.alloc(0)]));
      resolve({
        socket,
        received: () => got,
        ended,
        close: () => socket.destroy(),
        until: (pred, ms = 5000) => new Promise((res, rej) => {
          if (pred(got)) return res(got);
          const timer = setTimeout(() => rej(new Error(`timed out; received ${got.length} bytes: ${got.subarray(0, 200).toString('latin1')}`)), ms);
          const check = (): void => {
            if (!pred(got)) return;
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(check), 1);
            res(got);
          };
          waiters.push(check);
          void ended.then(() => { if (!pred(got)) { clearTimeout(timer); rej(new Error(`connection closed; received: ${got.subarray(0, 300).toString('latin1')}`)); } });
        }),
      });
    });
    socket.once('error', reject);
  });
}

/** The frames after the HTTP response head in `got`, and the head itself. */
export function afterHead(got: Buffer): { head: string; frames: ServerFrame[] } {
  const end = got.indexOf('\r\n\r\n');
  if (end < 0) return { head: '', frames: [] };
  return { head: got.subarray(0, end + 4).toString('latin1'), frames: parseFrames(got.subarray(end + 4)).frames };
}
