/**
 * A raw TWS2 client for byte-level protocol tests: does the real handshake
 * with `ws`, then sends and receives frames through the shared codec.
 */
import { WebSocket } from 'ws';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { decodeFrame, Frame } from '../../src/protocol/frames';
import { PASSWD } from './procs';

export interface RawPeer {
  ws: WebSocket;
  frames: Frame[];
  /** Resolves with the first frame (received so far or later) matching `pred`. */
  next(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  closed: Promise<{ code: number; reason: string }>;
  send(buf: Buffer): void;
}

export function rawPeer(port: number, opts: { path?: string; auth?: string; headers?: Record<string, string>; host?: string } = {}): Promise<RawPeer> {
  const ws = new WebSocket(`ws://${opts.host ?? '127.0.0.1'}:${port}${opts.path ?? '/'}`, ['tws2'], {
    perMessageDeflate: false,
    headers: { 'Tws-Auth': opts.auth ?? buildAuthHeader(PASSWD), ...opts.headers },
  });
  const frames: Frame[] = [];
  const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return;
    const f = decodeFrame(data);
    frames.push(f);
    for (const w of [...waiters]) {
      if (w.pred(f)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(f);
      }
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
    ws.once('open', () => resolve({
      ws,
      frames,
      closed,
      send: (buf) => ws.send(buf),
      next: (pred, timeoutMs = 10_000) => new Promise((res, rej) => {
        const hit = frames.find(pred);
        if (hit) return res(hit);
        const timer = setTimeout(() => rej(new Error('no matching frame')), timeoutMs);
        waiters.push({ pred, resolve: (f) => { clearTimeout(timer); res(f); } });
      }),
    }));
  });
}
