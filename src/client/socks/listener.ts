/**
 * The client's SOCKS5 listener (-D/--socks): negotiates with each local
 * connection (RFC 1928, and RFC 1929 logins when configured), then hands a
 * CONNECT to the client as a stream named `socks` whose reply the engine
 * writes once the server answered, or starts a UDP ASSOCIATE. Everything
 * read before that is bounded, and a connection that does not finish the
 * negotiation within `timeout` is closed. Connections negotiating are
 * bounded (NegotiationLimit), and failed logins answered late and locked
 * out per address (LoginThrottle).
 */
import { createServer, Server, Socket } from 'node:net';
import type { EngineSession, StreamReply } from '../../engine/types';
import { formatHostPort, formatPeer } from '../../util/address';
import { addTo } from '../../util/counts';
import { isLoopbackAddress, sourceKey, unmappedAddress } from '../../util/ip';
import { Logger, peerText, RateLimitedLog } from '../../util/log';
import type { SocksLogins } from './auth';
import {
  Command, encodeAuthStatus, encodeMethod, encodeReply, MAX_MESSAGE, Method, parseAuth, parseGreeting,
  parseRequest, Parsed, Reply, Request, targetOf,
} from './messages';
import { CONNECT_REPLY } from './reply';
import { NegotiationLimit } from '../negotiation-limit';
import { UdpStreamBudget } from '../udp-streams';
import { FAILED_LOGIN_DELAY_MS, LoginThrottle, throttleKey } from './login-throttle';
import { UdpAssociation } from './udp-associate';
import { tcpPeerUid } from '../../net/socket-owner';

/** UDP associations at once (each holds a TCP connection and a UDP socket); more are refused. */
const MAX_ASSOCIATIONS = 1024;
/** Of those, one owner's: a local user (on loopback, by uid) or an address (sourceKey). */
const MAX_ASSOCIATIONS_PER_OWNER = MAX_ASSOCIATIONS / 4;

/** Udp streams all of a listener's associations may have open at once; datagrams to more destinations are dropped. */
export const MAX_SOCKS_UDP_STREAMS = 4096;

export interface SocksOptions {
  logins?: SocksLogins;
  /** How long the negotiation may take (ms). */
  timeout: number;
  udpTimeout: number;
  logger: Logger;
  /** Carries `socket` (paused) to `target` as a `socks` stream; the engine writes `reply` when the server answers. */
  carry(socket: Socket, peer: string, target: string, reply: StreamReply): void;
  pick(): EngineSession | undefined;
}

type Phase = 'greeting' | 'auth' | 'request';

/**
 * Who holds a UDP association, for the per-owner cap and the datagram check:
 * on loopback the local user whose process asked (its uid, from
 * /proc/net: src/net/socket-owner.ts), elsewhere the address.
 */
function ownerOf(socket: Socket): { key: string; uid?: number } {
  const local = unmappedAddress(socket.localAddress ?? '127.0.0.1');
  const client = unmappedAddress(socket.remoteAddress ?? '');
  if (!isLoopbackAddress(client)) return { key: `address ${sourceKey(client)}` };
  const uid = tcpPeerUid({ address: local, port: socket.localPort ?? 0 }, { address: client, port: socket.remotePort ?? 0 });
  return uid === undefined ? { key: 'loopback' } : { key: `user ${uid}`, uid };
}

export class SocksListener {
  readonly server: Server;
  private readonly negotiating = new Set<Socket>();
  private readonly associations = new Set<UdpAssociation>();
  /** Associations by owner (ownerOf), so one local user or address cannot take them all. */
  private readonly byOwner = new Map<string, number>();
  private readonly udpBudget = new UdpStreamBudget(MAX_SOCKS_UDP_STREAMS);
  /** A client can provoke these by the thousand. */
  private readonly loginRefusals: RateLimitedLog;
  private readonly throttle: LoginThrottle;
  private readonly limit: NegotiationLimit;

  constructor(private readonly opts: SocksOptions) {
    this.loginRefusals = new RateLimitedLog(opts.logger, 'socks login refusals');
    this.throttle = new LoginThrottle(opts.logger);
    this.limit = new NegotiationLimit('socks', opts.logger);
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.negotiate(s));
  }

  /** Ends every negotiation and association (the listener itself is closed by its owner). */
  close(): void {
    for (const s of this.negotiating) s.destroy();
    for (const a of [...this.associations]) a.end();
  }

  private negotiate(socket: Socket): void {
    const peer = formatPeer(socket);
    const log = this.opts.logger;
    const release = this.limit.admit(socket, peer);
    if (!release) {
      socket.destroy();
      return;
    }
    let phase: Phase = 'greeting';
    let buf: Buffer = Buffer.alloc(0);
    this.negotiating.add(socket);
    let tarpit: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      log.debug(`socks: closed ${peer}: no request within ${this.opts.timeout} ms`);
      socket.destroy();
    }, this.opts.timeout);
    const done = (): void => {
      clearTimeout(timer);
      clearTimeout(tarpit);
      release();
      this.negotiating.delete(socket);
      socket.off('data', onData);
      socket.off('close', done);
      socket.off('end', onError);
    };
    // An error, or the client's FIN before its request was answered (it can send nothing more), ends it.
    const onError = (): void => { socket.destroy(); };
    socket.on('error', onError);
    socket.on('end', onError);
    socket.on('close', done);
    /** Answers `bytes` (if any) and closes; reads on but keeps nothing until the peer closes or the timer does. */
    const refuse = (why: string, bytes?: Buffer): void => {
      log.debug(`socks: closed ${peer}: ${why}`);
      socket.off('data', onData);
      socket.on('data', () => undefined);
      if (bytes) socket.end(bytes);
      else socket.end();
    };
    const step = <T>(r: Parsed<T>, badBytes: (rep?: number) => Buffer | undefined): T | undefined => {
      // No message is longer than MAX_MESSAGE: a parser never asks for more than that (a guard, not a limit on early data).
      if (r.kind === 'more') {
        if (buf.length > MAX_MESSAGE) refuse(`sent a message longer than ${MAX_MESSAGE} bytes`);
        return undefined;
      }
      if (r.kind === 'bad') {
        refuse(r.why, badBytes(r.reply));
        return undefined;
      }
      buf = buf.subarray(r.used);
      return r.value;
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        const before = phase;
        if (phase === 'greeting') {
          const g = step(parseGreeting(buf), (rep) => (rep === undefined ? undefined : encodeMethod(rep)));
          if (!g) return;
          const want = this.opts.logins ? Method.USERPASS : Method.NONE;
          if (!g.methods.includes(want)) {
            return refuse(`offers no acceptable method (${this.opts.logins ? 'username/password required' : 'only no-auth is offered here'})`,
              encodeMethod(Method.UNACCEPTABLE));
          }
          socket.write(encodeMethod(want));
          phase = this.opts.logins ? 'auth' : 'request';
        } else if (phase === 'auth') {
          const a = step(parseAuth(buf), () => encodeAuthStatus(false));
          if (!a) return;
          const source = throttleKey(socket.remoteAddress ?? '', a.user, this.opts.logins!.has(a.user));
          const locked = this.throttle.locked(source);
          if (locked || !this.opts.logins!.check(a.user, a.pass)) {
            if (!locked) {
              this.throttle.failed(source);
              this.loginRefusals.line('warn', `socks: login refused for user ${JSON.stringify(peerText(a.user.toString('utf8'), 64))} from ${peer}`);
            }
            // Answered late (this connection waits, nothing else does): guessing goes slowly.
            socket.off('data', onData);
            socket.on('data', () => undefined);
            tarpit = setTimeout(() => refuse(locked ? 'login refused: too many failed logins' : 'wrong login',
              encodeAuthStatus(false)), FAILED_LOGIN_DELAY_MS);
            return;
          }
          socket.write(encodeAuthStatus(true));
          phase = 'request';
        } else {
          const r = step(parseRequest(buf), (rep) => (rep === undefined ? undefined : encodeReply(rep)));
          if (!r) return;
          const owner = r.cmd === Command.UDP_ASSOCIATE ? ownerOf(socket) : undefined;
          const no = this.unanswerable(r, owner?.key);
          if (no) return refuse(no.why, encodeReply(no.reply));
          done();
          socket.off('error', onError);
          this.request(socket, peer, r, buf, owner);
          return;
        }
        if (phase === before || buf.length === 0) return;
      }
    };
    socket.on('data', onData);
    socket.resume();  // accepted paused (pauseOnConnect), for the engine's sake
  }

  /** Why a well-formed request is refused here, before any stream: a command other than CONNECT and UDP ASSOCIATE, and so on. */
  private unanswerable(req: Request, owner?: string): { why: string; reply: number } | undefined {
    if (req.cmd === Command.CONNECT) return req.port === 0 ? { why: 'CONNECT to port 0', reply: Reply.GENERAL_FAILURE } : undefined;
    if (req.cmd !== Command.UDP_ASSOCIATE) return { why: `command ${req.cmd} not supported`, reply: Reply.COMMAND_NOT_SUPPORTED };
    if (this.associations.size >= MAX_ASSOCIATIONS) return { why: `already ${MAX_ASSOCIATIONS} udp associations`, reply: Reply.GENERAL_FAILURE };
    if ((this.byOwner.get(owner ?? '') ?? 0) >= MAX_ASSOCIATIONS_PER_OWNER) {
      return { why: `its ${owner} holds ${MAX_ASSOCIATIONS_PER_OWNER} udp associations already`, reply: Reply.GENERAL_FAILURE };
    }
    return undefined;
  }

  /** `owner`: who asks, for a UDP ASSOCIATE (ownerOf, read once for the cap and the association). */
  private request(socket: Socket, peer: string, req: Request, early: Buffer, owner?: { key: string; uid?: number }): void {
    if (req.cmd === Command.CONNECT) {
      socket.pause();
      // Data the client sent before its answer (optimistic clients) is the stream's first payload.
      if (early.length > 0) socket.unshift(early);
      this.opts.carry(socket, peer, targetOf(req), CONNECT_REPLY);
    } else {
      void this.associate(socket, peer, req, owner!);
    }
  }

  private async associate(socket: Socket, peer: string, req: Request, owner: { key: string; uid?: number }): Promise<void> {
    const log = this.opts.logger;
    socket.on('error', () => socket.destroy());
    addTo(this.byOwner, owner.key, 1);
    socket.once('close', () => addTo(this.byOwner, owner.key, -1));
    const assoc = new UdpAssociation({
      localAddress: unmappedAddress(socket.localAddress ?? '127.0.0.1'),
      clientAddress: unmappedAddress(socket.remoteAddress ?? ''),
      clientPort: req.port,
      clientUid: owner.uid,
      udpTimeout: this.opts.udpTimeout,
      budget: this.udpBudget,
      pick: () => this.opts.pick(),
      logger: log,
      onEnd: () => {
        this.associations.delete(assoc);
        socket.destroy();
      },
    });
    this.associations.add(assoc);
    // The control connection carries nothing more; what the client sends on it is read and dropped.
    socket.on('data', () => undefined);
    // allowHalfOpen: the client's FIN ends the association too, not only a close.
    socket.on('end', () => assoc.end());
    socket.on('close', () => assoc.end());
    try {
      const addr = await assoc.bind();
      if (socket.destroyed) return;
      socket.write(encodeReply(Reply.SUCCEEDED, addr.address, addr.port));
      log.info(`socks: udp association for ${peer} on ${formatHostPort(addr.address, addr.port)}`);
    } catch (err) {
      log.warn(`socks: udp association for ${peer} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      // The association ends when the client closes (end/close above), not before its answer is out.
      this.associations.delete(assoc);
      socket.end(encodeReply(Reply.GENERAL_FAILURE));
    }
  }
}
