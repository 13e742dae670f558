/**
 * Connects the server's side of a stream to its target and answers the
 * engine's open request: accept with the socket, or RESET with why.
 */
import { createSocket } from 'node:dgram';
import { connect, isIP, Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { ResetCode } from '../protocol/constants';
import type { OpenRequest } from '../engine/types';
import { formatHostPort, HostPort, parseHostPort } from '../util/address';
import type { Logger } from '../util/log';
import type { AllowList } from './allow-list';

const REFUSALS: Record<string, number> = {
  ECONNREFUSED: ResetCode.CONNECT_FAILED,
  EHOSTUNREACH: ResetCode.CONNECT_FAILED,
  ENETUNREACH: ResetCode.CONNECT_FAILED,
  ENOTFOUND: ResetCode.CONNECT_FAILED,
  ETIMEDOUT: ResetCode.TIMEOUT,
};

/** Parses the request's target, or rejects the request and returns undefined. */
function targetOf(req: OpenRequest): HostPort | undefined {
  if (req.target === '') {
    req.reject(ResetCode.DENIED, 'no pinned target on this server');
    return undefined;
  }
  const hp = parseHostPort(req.target);
  if (typeof hp === 'string') {
    req.reject(ResetCode.CONNECT_FAILED, `bad target: ${hp}`);
    return undefined;
  }
  return hp;
}

/**
 * Where a stream may go: without an allow-list, the target as given; with
 * one, the resolved address a rule allows (`go` connects exactly there). A
 * denial is answered RESET 1 and logged.
 */
function admitted(req: OpenRequest, hp: HostPort, allow: AllowList | undefined, log: Logger, go: (hp: HostPort) => void): void {
  if (!allow || allow.empty) return go(hp);
  allow.decide(hp).then((d) => {
    if (req.signal.aborted) return;
    if (d.ok) return go({ host: d.address, port: hp.port });
    log.warn(`stream#${req.stream} denied → ${req.target}: ${d.why}`);
    req.reject(ResetCode.DENIED, 'target not allowed');
  }, (err: Error) => req.reject(ResetCode.INTERNAL, err.message));
}

/** Connects `req.target` within `timeoutMs` (if the allow-list lets it), then accepts or rejects the request. */
export function connectTarget(req: OpenRequest, timeoutMs: number, allow: AllowList | undefined, log: Logger): void {
  const hp = targetOf(req);
  if (!hp) return;
  admitted(req, hp, allow, log, (to) => {
    // An IP address (always, after an allow-list) the engine can connect itself; names resolve here.
    const inEngine = isIP(to.host) !== 0 && !to.host.includes('%') ? req.dial : undefined;
    log.debug(`stream#${req.stream} connecting ${formatHostPort(to.host, to.port)}${inEngine ? ' (in the engine)' : ''}`);
    if (inEngine) inEngine(to.host, to.port, timeoutMs);
    else dial(req, to, timeoutMs);
  });
}

function dial(req: OpenRequest, hp: HostPort, timeoutMs: number): void {
  const socket: Socket = connect({ host: hp.host, port: hp.port, allowHalfOpen: true });
  let settled = false;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    req.signal.removeEventListener('abort', onAbort);
    return true;
  };
  const timer = setTimeout(() => {
    if (!settle()) return;
    socket.destroy();
    req.reject(ResetCode.TIMEOUT, `connect timed out after ${timeoutMs} ms`);
  }, timeoutMs);
  const onAbort = (): void => {
    if (settle()) socket.destroy();
  };
  req.signal.addEventListener('abort', onAbort);
  socket.once('connect', () => {
    if (!settle()) return;
    socket.removeAllListeners('error');
    req.accept(socket);
  });
  socket.once('error', (err: NodeJS.ErrnoException) => {
    if (!settle()) return;
    req.reject(REFUSALS[err.code ?? ''] ?? ResetCode.CONNECT_FAILED, `connect failed: ${err.code ?? err.message}`);
  });
}

/** Opens a connected UDP socket to `req.target` (if the allow-list lets it) and hands it to the engine as a datagram port. */
export function connectUdpTarget(req: OpenRequest, allow: AllowList | undefined, log: Logger): void {
  const hp = targetOf(req);
  if (hp) admitted(req, hp, allow, log, (to) => openUdp(req, to));
}

function openUdp(req: OpenRequest, hp: HostPort): void {
  const resolve = isIP(hp.host) ? Promise.resolve({ address: hp.host, family: isIP(hp.host) }) : lookup(hp.host);
  resolve.then(({ address, family }) => {
    if (req.signal.aborted) return;
    const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      sock.close();
    };
    sock.on('error', (err: NodeJS.ErrnoException) => {
      // ICMP port unreachable shows up as ECONNREFUSED on a connected socket: UDP shrugs it off.
      if (err.code !== 'ECONNREFUSED') close();
    });
    sock.connect(hp.port, address, () => {
      if (req.signal.aborted) return close();
      const port = {
        send: (payload: Buffer) => { if (open) sock.send(payload); },
        close,
        onDatagram: undefined as ((p: Buffer) => void) | undefined,
      };
      sock.on('message', (msg: Buffer) => port.onDatagram?.(msg));
      req.acceptDatagrams(port);
    });
  }, (err: NodeJS.ErrnoException) => {
    if (!req.signal.aborted) req.reject(ResetCode.CONNECT_FAILED, `resolve failed: ${err.code ?? err.message}`);
  });
}
