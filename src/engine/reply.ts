/**
 * Per-stream local replies (StreamReply): what a proxy listener (HTTP
 * CONNECT, SOCKS5) answers its local client once the peer accepted or
 * refused the stream. The engine writes them itself (the native engine owns
 * the local socket from openStream on), so both engines share the rules here:
 * the bounds, checked at the call, and which bytes a RESET picks.
 */
import type { Socket } from 'node:net';
import { MAX_REASON } from '../protocol/constants';
import { startReading } from '../net/local-reads';
import type { StreamReply } from './types';

/** At most this many bytes in `ok`, `otherwise` and each rule's bytes. */
export const MAX_REPLY_BYTES = 512;
/** At most this many refusal rules. */
export const MAX_REPLY_RULES = 16;

/** Throws a TypeError when `reply` is out of bounds or malformed: it never reaches an engine's I/O. */
export function checkReply(reply: StreamReply): void {
  const bytes = (b: unknown, what: string): void => {
    if (!Buffer.isBuffer(b)) throw new TypeError(`stream reply: ${what} must be a Buffer`);
    if (b.length > MAX_REPLY_BYTES) throw new TypeError(`stream reply: ${what} is ${b.length} bytes, more than ${MAX_REPLY_BYTES}`);
  };
  bytes(reply.ok, 'ok');
  bytes(reply.otherwise, 'otherwise');
  if (!Array.isArray(reply.refused)) throw new TypeError('stream reply: refused must be an array');
  if (reply.refused.length > MAX_REPLY_RULES) throw new TypeError(`stream reply: more than ${MAX_REPLY_RULES} refusal rules`);
  reply.refused.forEach((r, i) => {
    if (!Number.isInteger(r.code) || r.code < 0 || r.code > 0xffff) throw new TypeError(`stream reply: rule ${i} has a bad code`);
    if (r.reasonIncludes !== undefined && (typeof r.reasonIncludes !== 'string' || Buffer.byteLength(r.reasonIncludes) > MAX_REASON)) {
      throw new TypeError(`stream reply: rule ${i} has a bad reasonIncludes`);
    }
    bytes(r.bytes, `rule ${i} bytes`);
  });
}

/** The bytes for a RESET with `code` and `reason`: the first rule that matches, else `otherwise`. */
export function pickReply(reply: StreamReply, code: number, reason: string): Buffer {
  const rule = reply.refused.find((r) => r.code === code && (!r.reasonIncludes || reason.includes(r.reasonIncludes)));
  return rule ? rule.bytes : reply.otherwise;
}

/**
 * Answers a local socket whose stream never opened: `bytes`, then a FIN.
 * What the client still sends is read and dropped (unread bytes would make
 * the close a RST, which can cost the client the answer); the socket goes
 * once the client closes its side too, or after `lingerMs`.
 */
export function answerLocal(local: Socket, bytes: Buffer, lingerMs = 2000): void {
  if (local.destroyed) return;
  local.removeAllListeners('data');
  local.on('data', () => undefined);
  local.on('error', () => undefined);
  local.on('end', () => local.destroy());
  local.end(bytes);
  startReading(local);
  setTimeout(() => local.destroy(), lingerMs).unref();
}
