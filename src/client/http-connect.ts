/**
 * The client's HTTP CONNECT listener (`--http-connect [BIND:]PORT`): for
 * tools that only know HTTP proxies (git, npm, apt, browsers). JavaScript
 * reads the request head, bounded in size and time; `CONNECT host:port`
 * becomes a stream to host:port, and the engine itself answers the local
 * client (StreamReply): 200 once the server accepted, or the status the
 * server's RESET maps to. Anything else is answered here and closed.
 */
import type { Socket } from 'node:net';
import { answerLocal } from '../engine/reply';
import type { StreamReply } from '../engine/types';
import { ResetCode } from '../protocol/constants';
import { formatHostPort, parseHostPort } from '../util/address';
import { peerText, RateLimitedLog } from '../util/log';

/** How stream lines and logs name the listener. */
export const HTTP_CONNECT = 'http-connect';
/** A request head longer than this is answered 400. */
export const MAX_HEAD = 8192;

/** A whole HTTP response with a short text body (never any peer text). */
export function httpResponse(status: number, text: string, body: string, extra = ''): Buffer {
  return Buffer.from(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
    + `Connection: close\r\n${extra}\r\n${body}`, 'latin1');
}

const badGateway = (why: string): Buffer => httpResponse(502, 'Bad Gateway', `tws: ${why}\n`);

/** The answer to a connection beyond the listener's bound on connections still sending their request (NegotiationLimit). */
export const TOO_MANY_NEGOTIATING = httpResponse(503, 'Service Unavailable', 'tws: too many connections waiting to send their request; try again\n');

/** The engine's answers: 200, or the status for why the server refused the stream. */
export const CONNECT_REPLY: StreamReply = {
  ok: Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n', 'latin1'),
  refused: [
    { code: ResetCode.DENIED, bytes: httpResponse(403, 'Forbidden', 'tws: the server does not allow this target\n') },
    { code: ResetCode.CONNECT_FAILED, reasonIncludes: 'ECONNREFUSED', bytes: badGateway('the target refused the connection') },
    { code: ResetCode.CONNECT_FAILED, reasonIncludes: 'ENOTFOUND', bytes: badGateway('the server cannot resolve the target name') },
    { code: ResetCode.CONNECT_FAILED, reasonIncludes: 'EAI_AGAIN', bytes: badGateway('the server cannot resolve the target name now') },
    { code: ResetCode.CONNECT_FAILED, reasonIncludes: 'UNREACH', bytes: badGateway('the target is unreachable from the server') },
    { code: ResetCode.CONNECT_FAILED, bytes: badGateway('the server could not connect to the target') },
    { code: ResetCode.TIMEOUT, bytes: httpResponse(504, 'Gateway Timeout', 'tws: connecting to the target timed out\n') },
    { code: ResetCode.TOO_MANY_STREAMS, bytes: badGateway('the server has too many streams open') },
    { code: ResetCode.GOING_AWAY, bytes: badGateway('the server is going away; try again') },
  ],
  otherwise: badGateway('the tunnel to the server failed'),
};

/** What a request head asks for: more bytes, an answer and close, or a CONNECT to `target` with the bytes past the head. */
export type HeadVerdict =
  | { kind: 'incomplete' }
  | { kind: 'answer'; response: Buffer; why: string }
  | { kind: 'connect'; target: string; rest: Buffer };

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^\s]+) HTTP\/1\.[01]$/;

/** Judges the bytes read so far from a local client (a pure function: tested on its own). */
export function parseConnectHead(buf: Buffer): HeadVerdict {
  // The head ends at its first empty line, CRLF or bare LF either side (\r\n\r\n, \n\n, \n\r\n).
  const blank = /\n\r?\n/.exec(buf.subarray(0, MAX_HEAD + 3).toString('latin1'));
  const end = blank ? blank.index + blank[0].length : -1;
  if (end < 0 || end > MAX_HEAD) {
    if (buf.length <= MAX_HEAD) return { kind: 'incomplete' };
    return { kind: 'answer', response: httpResponse(400, 'Bad Request', `tws: request head larger than ${MAX_HEAD} bytes\n`), why: 'head too large' };
  }
  const line = buf.subarray(0, buf.indexOf('\n')).toString('latin1').replace(/\r$/, '');
  const m = REQUEST_LINE.exec(line);
  if (!m) return { kind: 'answer', response: httpResponse(400, 'Bad Request', 'tws: not an HTTP/1.x request\n'), why: 'not an HTTP request' };
  const [, method, target] = m as unknown as [string, string, string];
  if (method !== 'CONNECT') {
    return {
      kind: 'answer',
      response: httpResponse(405, 'Method Not Allowed', 'tws: this proxy only tunnels: use CONNECT host:port\n', 'Allow: CONNECT\r\n'),
      why: `method ${method}`,
    };
  }
  const hp = parseHostPort(target);
  if (typeof hp === 'string') {
    return { kind: 'answer', response: httpResponse(400, 'Bad Request', 'tws: CONNECT needs host:port\n'), why: `bad CONNECT target (${hp})` };
  }
  return { kind: 'connect', target: formatHostPort(hp.host, hp.port), rest: buf.subarray(end) };
}

/**
 * Reads one request head from `socket` (paused, as the listener accepts it)
 * within `timeoutMs`: resolves with the CONNECT target, the bytes past the
 * head pushed back onto the socket (the stream carries them first); or
 * answers (400, 405, 408; a line each through `lines`: anyone who reaches
 * the port provokes them) or drops the connection and resolves undefined.
 */
export function readConnectRequest(socket: Socket, timeoutMs: number, lines: RateLimitedLog, peer: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (target: string | undefined): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', gone);
      socket.off('error', gone);
      socket.off('close', gone);
      socket.pause();
      resolve(target);
    };
    const answer = (response: Buffer, why: string): void => {
      finish(undefined);
      lines.line('info', `${HTTP_CONNECT}: ${peerText(why, 64)} from ${peer}; answered ${response.subarray(9, 12).toString('latin1')}`);
      answerLocal(socket, response);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const v = parseConnectHead(buf);
      if (v.kind === 'answer') return answer(v.response, v.why);
      if (v.kind === 'incomplete') return;
      finish(v.target);
      if (v.rest.length > 0) socket.unshift(v.rest);
    };
    const gone = (): void => {
      finish(undefined);
      socket.destroy();
    };
    const timer = setTimeout(() => answer(httpResponse(408, 'Request Timeout', `tws: no complete request within ${timeoutMs} ms\n`),
      'no complete request in time'), timeoutMs);
    socket.on('data', onData);
    socket.once('end', gone);
    socket.once('error', gone);
    socket.once('close', gone);  // destroyed here (a full negotiation limit makes room): no answer, no line
    socket.resume();
  });
}
