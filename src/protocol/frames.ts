/**
 * TWS2 frame codec: every frame is one binary WebSocket message,
 * `type u8 | stream id u32 | body`. Pure functions, shared by the js engine
 * and the tests. Decoding a malformed frame of a known type throws
 * ProtocolError; an unknown type decodes to `{ type: 'unknown' }`.
 */
import { ProtocolError } from '../util/errors';
import {
  EARLY_DATA_LIMIT, FrameType, HEADER_LEN, LISTEN_TOKEN_LEN, MAX_DATA, MAX_FRAME_BODY, MAX_REASON, MAX_TARGET, MAX_U32,
  StreamKind, StreamKindValue,
} from './constants';

export type Frame =
  | { type: 'open'; stream: number; window: number; kind: StreamKindValue; target: string }
  | { type: 'open-ok'; stream: number; window: number }
  | { type: 'data'; stream: number; payload: Buffer }
  | { type: 'window'; stream: number; increment: number }
  | { type: 'fin'; stream: number }
  | { type: 'reset'; stream: number; code: number; reason: string }
  | { type: 'datagram'; stream: number; payload: Buffer }
  | { type: 'goaway'; stream: 0; code: number; reason: string }
  | ControlFrame
  | { type: 'unknown'; stream: number; rawType: number };

/**
 * The reverse-tunnel frames (stream 0), which the engines hand to the
 * control plane as they are: LISTEN from a client, LISTEN_OK / LISTEN_ERR
 * from a server. `request` pairs an answer with its LISTEN.
 */
export type ControlFrame =
  | { type: 'listen'; stream: 0; request: number; token: Buffer; bind: string }
  | { type: 'listen-ok'; stream: 0; request: number; port: number }
  | { type: 'listen-err'; stream: 0; request: number; code: number; reason: string };

/** The frame types that decode to a ControlFrame. */
export function isControlType(type: number): boolean {
  return type >= FrameType.LISTEN && type <= FrameType.LISTEN_ERR;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function header(type: number, stream: number, bodyLen: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_LEN + bodyLen);
  buf[0] = type;
  buf.writeUInt32BE(stream, 1);
  return buf;
}

/** The first `max` bytes of `text` at most, without splitting a UTF-8 sequence. */
export function utf8Prefix(text: string, max: number): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Cuts a reason to at most MAX_REASON bytes without splitting a UTF-8 sequence. */
export function clampReason(reason: string): Buffer {
  return utf8Prefix(reason, MAX_REASON);
}

export function encodeOpen(stream: number, window: number, kind: StreamKindValue, target: string): Buffer {
  const t = Buffer.from(target, 'utf8');
  const buf = header(FrameType.OPEN, stream, 5 + t.length);
  buf.writeUInt32BE(window, 5);
  buf[9] = kind;
  t.copy(buf, 10);
  return buf;
}

export function encodeOpenOk(stream: number, window: number): Buffer {
  const buf = header(FrameType.OPEN_OK, stream, 4);
  buf.writeUInt32BE(window, 5);
  return buf;
}

/** The DATA header alone, so a payload can follow without a copy. */
export function encodeDataHeader(stream: number): Buffer {
  return header(FrameType.DATA, stream, 0);
}

export function encodeData(stream: number, payload: Buffer): Buffer {
  const buf = header(FrameType.DATA, stream, payload.length);
  payload.copy(buf, HEADER_LEN);
  return buf;
}

export function encodeDatagram(stream: number, payload: Buffer): Buffer {
  const buf = header(FrameType.DATAGRAM, stream, payload.length);
  payload.copy(buf, HEADER_LEN);
  return buf;
}

export function encodeWindow(stream: number, increment: number): Buffer {
  const buf = header(FrameType.WINDOW, stream, 4);
  buf.writeUInt32BE(increment, 5);
  return buf;
}

export function encodeFin(stream: number): Buffer {
  return header(FrameType.FIN, stream, 0);
}

function encodeCoded(type: number, stream: number, code: number, reason: string): Buffer {
  const r = clampReason(reason);
  const buf = header(type, stream, 2 + r.length);
  buf.writeUInt16BE(code, 5);
  r.copy(buf, 7);
  return buf;
}

export function encodeReset(stream: number, code: number, reason = ''): Buffer {
  return encodeCoded(FrameType.RESET, stream, code, reason);
}

export function encodeGoaway(code: number, reason = ''): Buffer {
  return encodeCoded(FrameType.GOAWAY, 0, code, reason);
}

/** Encodes a reverse-tunnel frame (the bind is at most MAX_TARGET bytes, the reason is cut to MAX_REASON). */
export function encodeControl(f: ControlFrame): Buffer {
  switch (f.type) {
    case 'listen': {
      const bind = Buffer.from(f.bind, 'utf8');
      const buf = header(FrameType.LISTEN, 0, 4 + LISTEN_TOKEN_LEN + bind.length);
      buf.writeUInt32BE(f.request, 5);
      f.token.copy(buf, 9, 0, LISTEN_TOKEN_LEN);
      bind.copy(buf, 9 + LISTEN_TOKEN_LEN);
      return buf;
    }
    case 'listen-ok': {
      const buf = header(FrameType.LISTEN_OK, 0, 6);
      buf.writeUInt32BE(f.request, 5);
      buf.writeUInt16BE(f.port, 9);
      return buf;
    }
    case 'listen-err': {
      const r = clampReason(f.reason);
      const buf = header(FrameType.LISTEN_ERR, 0, 6 + r.length);
      buf.writeUInt32BE(f.request, 5);
      buf.writeUInt16BE(f.code, 9);
      r.copy(buf, 11);
      return buf;
    }
  }
}

function decodeControl(type: number, stream: number, body: Buffer): ControlFrame {
  if (stream !== 0) throw new ProtocolError('LISTEN frame on a stream other than 0');
  if (body.length < 6) throw new ProtocolError('LISTEN frame body shorter than 6 bytes');
  const request = body.readUInt32BE(0);
  if (type === FrameType.LISTEN_OK) {
    if (body.length !== 6) throw new ProtocolError('LISTEN_OK body must be 6 bytes');
    const port = body.readUInt16BE(4);
    if (port === 0) throw new ProtocolError('LISTEN_OK with port 0');
    return { type: 'listen-ok', stream: 0, request, port };
  }
  if (type === FrameType.LISTEN_ERR) {
    return { type: 'listen-err', stream: 0, request, code: body.readUInt16BE(4), reason: decodeReason(body.subarray(6), 'LISTEN_ERR') };
  }
  const bind = body.subarray(4 + LISTEN_TOKEN_LEN);
  if (bind.length === 0 || bind.length > MAX_TARGET) throw new ProtocolError(`LISTEN address empty or longer than ${MAX_TARGET} bytes`);
  let text: string;
  try {
    text = utf8.decode(bind);
  } catch {
    throw new ProtocolError('LISTEN address is not UTF-8');
  }
  return { type: 'listen', stream: 0, request, token: Buffer.from(body.subarray(4, 4 + LISTEN_TOKEN_LEN)), bind: text };
}

function decodeReason(body: Buffer, what: string): string {
  if (body.length > MAX_REASON) throw new ProtocolError(`${what} reason longer than ${MAX_REASON} bytes`);
  try {
    return utf8.decode(body);
  } catch {
    throw new ProtocolError(`${what} reason is not UTF-8`);
  }
}

function needStream(stream: number, what: string): void {
  if (stream === 0) throw new ProtocolError(`${what} on stream 0`);
}

/** Decodes one TWS2 message. Throws ProtocolError for malformed frames of known types. */
export function decodeFrame(msg: Buffer): Frame {
  if (msg.length < HEADER_LEN) throw new ProtocolError('frame shorter than its 5-byte header');
  const type = msg[0]!;
  const stream = msg.readUInt32BE(1);
  const body = msg.subarray(HEADER_LEN);
  if (type !== FrameType.DATA && type >= FrameType.OPEN && type <= FrameType.LISTEN_ERR && body.length > MAX_FRAME_BODY) {
    throw new ProtocolError(`frame body over ${MAX_FRAME_BODY} bytes`);
  }
  switch (type) {
    case FrameType.OPEN: {
      needStream(stream, 'OPEN');
      if (body.length < 5) throw new ProtocolError('OPEN body shorter than 5 bytes');
      const kind = body[4]!;
      if (kind !== StreamKind.TCP && kind !== StreamKind.UDP) throw new ProtocolError(`OPEN with unknown kind ${kind}`);
      let target: string;
      try {
        target = utf8.decode(body.subarray(5));
      } catch {
        throw new ProtocolError('OPEN target is not UTF-8');
      }
      return { type: 'open', stream, window: body.readUInt32BE(0), kind, target };
    }
    case FrameType.OPEN_OK: {
      needStream(stream, 'OPEN_OK');
      if (body.length !== 4) throw new ProtocolError('OPEN_OK body must be 4 bytes');
      const window = body.readUInt32BE(0);
      if (window < EARLY_DATA_LIMIT) throw new ProtocolError(`OPEN_OK window ${window} below ${EARLY_DATA_LIMIT}`);
      return { type: 'open-ok', stream, window };
    }
    case FrameType.DATA:
      needStream(stream, 'DATA');
      if (body.length === 0) throw new ProtocolError('empty DATA frame');
      if (body.length > MAX_DATA) throw new ProtocolError(`DATA payload over ${MAX_DATA} bytes`);
      return { type: 'data', stream, payload: body };
    case FrameType.WINDOW: {
      needStream(stream, 'WINDOW');
      if (body.length !== 4) throw new ProtocolError('WINDOW body must be 4 bytes');
      const increment = body.readUInt32BE(0);
      if (increment === 0) throw new ProtocolError('WINDOW increment of 0');
      return { type: 'window', stream, increment };
    }
    case FrameType.FIN:
      needStream(stream, 'FIN');
      if (body.length !== 0) throw new ProtocolError('FIN with a body');
      return { type: 'fin', stream };
    case FrameType.RESET:
      needStream(stream, 'RESET');
      if (body.length < 2) throw new ProtocolError('RESET body shorter than 2 bytes');
      return { type: 'reset', stream, code: body.readUInt16BE(0), reason: decodeReason(body.subarray(2), 'RESET') };
    case FrameType.DATAGRAM:
      needStream(stream, 'DATAGRAM');
      return { type: 'datagram', stream, payload: body };
    case FrameType.GOAWAY:
      if (stream !== 0) throw new ProtocolError('GOAWAY on a stream other than 0');
      if (body.length < 2) throw new ProtocolError('GOAWAY body shorter than 2 bytes');
      return { type: 'goaway', stream: 0, code: body.readUInt16BE(0), reason: decodeReason(body.subarray(2), 'GOAWAY') };
    case FrameType.LISTEN:
    case FrameType.LISTEN_OK:
    case FrameType.LISTEN_ERR:
      return decodeControl(type, stream, body);
    default:
      return { type: 'unknown', stream, rawType: type };
  }
}

/** True when `n` fits the u32 fields of the protocol. */
export function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_U32;
}
