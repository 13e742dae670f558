/**
 * Connects the server's side of a stream to its target and answers the
 * engine's open request: accept with the socket, or RESET with why. Every
 * request is answered exactly once, whatever fails (resolve, policy, socket
 * creation, connect, timeout), unless the peer cancelled it first.
 */
import { createSocket, Socket as UdpSocket } from 'node:dgram';
import { lookup as lookupCb, LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { ResetCode } from '../protocol/constants';
import type { OpenRequest } from '../engine/types';
import { dialRequest } from '../net/dial';
import { boundedUdpSender } from '../net/udp-send';
import { formatHostPort, HostPort, parseHostPort } from '../util/address';
import { ipText, parseIp } from '../util/ip';
import { Logger, peerText, RateLimitedLog } from '../util/log';
import type { AllowList } from '../policy/allow-list';
import { endLookup, LookupOwner, runLookup, takeLookup } from './lookups';

/** Resolves `host` in a lookup slot taken for it, on a thread as soon as one is free (see lookups.ts). */
function countedLookup<T>(policy: StreamPolicy, run: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => runLookup(policy, (done) => { void Promise.resolve().then(run).then(resolve, reject).finally(done); }));
}

/** How one session's stream requests are judged and logged. */
export interface StreamPolicy extends LookupOwner {
  /** undefined: every target; an empty list: none. */
  allow: AllowList | undefined;
  /** The rules now: a reload may have replaced `allow` while a name was looked up. */
  current(): AllowList | undefined;
  log: Logger;
  /** Where per-stream refusals go: a peer can provoke them by the thousand. */
  refusals: RateLimitedLog;
  /** The request passed policy: the stream's open line. */
  admitted(req: OpenRequest): void;
  /** UDP payloads dropped on the way to a target. */
  onDatagramDropped?(): void;
}

/** `p`, or 'timeout' after `ms`: a resolver that never answers must not leave an OPEN unanswered. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Answers `req` with RESET `code` and says so in the session's rate-limited refusal line. */
export function refuse(req: OpenRequest, refusals: RateLimitedLog, code: number, why: string, level: 'info' | 'warn' = 'info'): undefined {
  refusals.line(level, `stream#${req.stream} refused → ${peerText(req.target) || '(pinned)'}: ${why}`);
  req.reject(code, why);
  return undefined;
}

/**
 * Parses the request's target, or rejects the request and returns undefined.
 * An IP address comes back in its canonical form (src/util/ip.ts), which the
 * policy checks and the connect uses, never the peer's spelling.
 */
function targetOf(req: OpenRequest, policy: StreamPolicy): HostPort | undefined {
  if (req.target === '') return refuse(req, policy.refusals, ResetCode.DENIED, 'no pinned target on this server');
  const hp = parseHostPort(req.target);
  if (typeof hp === 'string') return refuse(req, policy.refusals, ResetCode.CONNECT_FAILED, `bad target: ${peerText(hp, 120)}`);
  const ip = parseIp(hp.host);
  if (typeof ip === 'string') return refuse(req, policy.refusals, ResetCode.CONNECT_FAILED, `bad target: ${ip}`);
  return ip ? { host: ipText(ip), port: hp.port } : hp;
}

/**
 * Where a stream may go: without an allow-list, the target as given; with
 * one, the resolved address a rule allows (`go` connects exactly there); an
 * empty list allows nothing. A denial is answered RESET 1 and logged.
 */
function admitted(req: OpenRequest, hp: HostPort, policy: StreamPolicy, timeoutMs: number, go: (hp: HostPort) => void): void {
  const pass = (to: HostPort): void => {
    // The rules changed (a reload) while the name was looked up: decided again under the rules now, never the old ones.
    const now = policy.current();
    if (now !== policy.allow) return admitted(req, hp, { ...policy, allow: now }, timeoutMs, go);
    policy.admitted(req);
    go(to);
  };
  if (!policy.allow) return pass(hp);
  const name = isIP(hp.host) === 0 && !policy.allow.empty;
  if (name && !lookupSlot(req, hp.host, policy)) return;
  // The slot taken for a name goes back when its lookup settles, or here when
  // the list decided without one (no rule covers the port, a numeric spelling).
  let looked = false;
  const decided = policy.allow.decide(hp, name ? (h) => { looked = true; return countedLookup(policy, () => resolveAll(h)); } : undefined)
    .finally(() => { if (name && !looked) endLookup(policy); });
  within(decided, timeoutMs).then((d) => {
    if (req.signal.aborted) return;
    if (d === 'timeout') return req.reject(ResetCode.TIMEOUT, `resolve timed out after ${timeoutMs} ms`);
    if (d.ok) return pass({ host: d.address, port: hp.port });
    // A name that does not resolve is not a policy decision: the peer hears it as it would without an allow-list.
    if (d.resolveFailed) return req.reject(ResetCode.CONNECT_FAILED, d.why);
    policy.refusals.line('warn', `stream#${req.stream} denied → ${peerText(req.target)}: ${d.why}`);
    req.reject(ResetCode.DENIED, 'target not allowed');
  }, (err: Error) => req.reject(ResetCode.INTERNAL, err.message));
}

async function resolveAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
}

function refuseBusy(req: OpenRequest, policy: StreamPolicy, why: string): void {
  refuse(req, policy.refusals, ResetCode.TOO_MANY_STREAMS, why, 'warn');
}

/** For a name, takes a lookup slot, or refuses the request and returns false. */
function lookupSlot(req: OpenRequest, host: string, policy: StreamPolicy): boolean {
  const busy = isIP(host) === 0 ? takeLookup(policy) : undefined;
  if (busy) refuseBusy(req, policy, busy);
  return busy === undefined;
}

/** Connects `req.target` within `timeoutMs` (if the policy lets it), then accepts or rejects the request. */
export function connectTarget(req: OpenRequest, timeoutMs: number, policy: StreamPolicy): void {
  const hp = targetOf(req, policy);
  if (!hp) return;
  admitted(req, hp, policy, timeoutMs, (to) => {
    // An IP address (always, after an allow-list) the engine can connect itself; names resolve here.
    const inEngine = isIP(to.host) !== 0 && !to.host.includes('%') ? req.dial : undefined;
    policy.log.debug(`stream#${req.stream} connecting ${formatHostPort(to.host, to.port)}${inEngine ? ' (in the engine)' : ''}`);
    if (inEngine) return inEngine(to.host, to.port, timeoutMs);
    if (!lookupSlot(req, to.host, policy)) return;
    dial(req, to, timeoutMs, policy);
  });
}

function dial(req: OpenRequest, hp: HostPort, timeoutMs: number, policy: StreamPolicy): void {
  // A name is resolved by net.connect through this, within the lookup slot taken for it.
  const counted = (host: string, options: object, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    runLookup(policy, (done) => lookupCb(host, options, (err, address, family) => {
      done();
      cb(err, address as string | LookupAddress[], family);
    }));
  };
  const name = isIP(hp.host) === 0;
  dialRequest(req, hp, timeoutMs, name ? { lookup: counted as never, notStarted: () => endLookup(policy) } : {});
}

/**
 * Opens a connected UDP socket to `req.target` (if the policy lets it,
 * resolving within `timeoutMs`) and hands it to the engine as a datagram port.
 */
export function connectUdpTarget(req: OpenRequest, timeoutMs: number, policy: StreamPolicy): void {
  const hp = targetOf(req, policy);
  if (hp) admitted(req, hp, policy, timeoutMs, (to) => openUdp(req, to, timeoutMs, policy));
}

function openUdp(req: OpenRequest, hp: HostPort, timeoutMs: number, policy: StreamPolicy): void {
  if (!lookupSlot(req, hp.host, policy)) return;
  const resolve = isIP(hp.host) ? Promise.resolve({ address: hp.host, family: isIP(hp.host) }) : countedLookup(policy, () => lookup(hp.host));
  within(resolve, timeoutMs).then((r) => {
    if (req.signal.aborted) return;
    if (r === 'timeout') return req.reject(ResetCode.TIMEOUT, `resolve timed out after ${timeoutMs} ms`);
    const { address, family } = r;
    let sock: UdpSocket;
    try {
      sock = createSocket(family === 6 ? 'udp6' : 'udp4');
    } catch (err) {
      req.reject(ResetCode.CONNECT_FAILED, `udp socket failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    let open = true;
    let answered = false;
    const send = boundedUdpSender(sock, () => policy.onDatagramDropped?.());
    const close = (): void => {
      if (!open) return;
      open = false;
      try {
        sock.close();
      } catch {
        // already closed by a failed bind
      }
    };
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered) {
        // The socket could not be set up (EMFILE, say): the request still gets its answer.
        answered = true;
        close();
        req.reject(ResetCode.CONNECT_FAILED, `udp socket failed: ${err.code ?? err.message}`);
        return;
      }
      // ICMP errors (port unreachable: ECONNREFUSED) on a connected socket: UDP shrugs them off.
      if (err.code !== 'ECONNREFUSED') policy.log.debug(`stream#${req.stream} udp: ${err.code ?? err.message}`);
    });
    sock.connect(hp.port, address, () => {
      if (answered) return;
      answered = true;
      if (req.signal.aborted) return close();
      const port = {
        send: (payload: Buffer) => {
          if (open) send(payload);
        },
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
