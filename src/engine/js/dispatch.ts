/**
 * The js session's inbound side: each decoded frame goes to its handler,
 * which checks it against the stream's state (a frame that breaks the
 * protocol throws ProtocolError, and the session closes) and acts on it.
 */
import type { Socket } from 'node:net';
import { MAX_TARGET, MAX_U32, resetText, ResetCode, StreamKind } from '../../protocol/constants';
import * as codec from '../../protocol/frames';
import { ProtocolError, TwsError } from '../../util/errors';
import { Logger, peerText } from '../../util/log';
import { pickReply } from '../reply';
import type { OpenRequest, SessionOptions, StreamRefusedInfo } from '../types';
import type { SessionFlow } from './flow';
import type { Liveness } from './liveness';
import type { LocalRelay } from './relay';
import type { Scheduler } from './scheduler';
import { JsStream } from './stream';
import type { StreamTable } from './stream-table';

/** What dispatch asks of the session and tells it. */
export interface DispatchHooks {
  /** We sent GOAWAY: new OPENs are refused. */
  draining(): boolean;
  /** The peer sent GOAWAY. */
  peerGoingAway(code: number, reason: string): void;
  /** Refuses an OPEN before a stream exists: RESET, the id remembered, an event. */
  refuse(info: StreamRefusedInfo): void;
  /** How many listeners answer open requests. */
  acceptors(): number;
  openRequest(req: OpenRequest): void;
  /** A reverse-tunnel frame, for the control plane. */
  control(f: codec.ControlFrame): void;
  addStream(s: JsStream): void;
  finish(s: JsStream, how: string, level: 'info' | 'debug', abortive?: boolean): void;
}

/** The session's parts a frame may act on. */
export interface DispatchParts {
  opts: SessionOptions;
  log: Logger;
  streams: StreamTable;
  flow: SessionFlow;
  sched: Scheduler;
  relay: LocalRelay;
  live: Liveness;
}

export class Dispatcher {
  constructor(private readonly p: DispatchParts, private readonly hooks: DispatchHooks) {}

  /** Acts on one decoded frame; throws ProtocolError when it breaks the protocol. */
  dispatch(f: codec.Frame): void {
    if (f.type === 'goaway') return this.hooks.peerGoingAway(f.code, f.reason);
    if (f.type === 'open') return this.onOpen(f);
    if (f.type === 'unknown') return;
    if (f.type === 'listen' || f.type === 'listen-ok' || f.type === 'listen-err') return this.onControl(f);
    const s = this.p.streams.get(f.stream);
    if (!s) {
      // Late frames for a stream we already closed are expected; frames for
      // ids never opened are not, but are harmless, so both are ignored.
      return;
    }
    switch (f.type) {
      case 'open-ok': return this.onOpenOk(s, f.window);
      case 'data': return this.onData(s, f.payload);
      case 'window': return this.onWindow(s, f.increment);
      case 'fin': return this.onFin(s);
      case 'reset': return this.onReset(s, f.code, f.reason);
      case 'datagram': return this.onDatagram(s, f.payload);
    }
  }

  private onOpen(f: { stream: number; window: number; kind: number; target: string }): void {
    const { opts } = this.p;
    const peerParity = opts.role === 'server' ? 1 : 0;
    if (f.stream % 2 !== peerParity) throw new ProtocolError(`OPEN with id ${f.stream} of the wrong parity`);
    if (this.p.streams.inUse(f.stream)) throw new ProtocolError(`OPEN for stream ${f.stream} already in use`);
    const tooLong = Buffer.byteLength(f.target) > MAX_TARGET;
    const target = tooLong ? codec.utf8Prefix(f.target, MAX_TARGET).toString('utf8') : f.target;
    const refuse = (code: number, reason: string): void => this.hooks.refuse({ stream: f.stream, target, code, reason });
    if (tooLong) return refuse(ResetCode.CONNECT_FAILED, `bad target: longer than ${MAX_TARGET} bytes`);
    if (this.hooks.draining()) return refuse(ResetCode.GOING_AWAY, 'going away');
    if (opts.role === 'client' && !opts.acceptStreams) return refuse(ResetCode.DENIED, 'client accepts no streams');
    if (f.kind === StreamKind.UDP && opts.noUdp) return refuse(ResetCode.DENIED, 'udp is disabled on this server');
    if (this.p.streams.size >= opts.maxStreams) return refuse(ResetCode.TOO_MANY_STREAMS, 'too many streams');
    if (f.kind === StreamKind.TCP && this.p.flow.processFull()) return refuse(ResetCode.TOO_MANY_STREAMS, 'memory budget reached');
    if (f.kind === StreamKind.TCP && this.p.flow.sessionFull()) return refuse(ResetCode.TOO_MANY_STREAMS, 'session memory share reached');
    if (this.hooks.acceptors() === 0) return refuse(ResetCode.DENIED, 'no acceptor');

    const s = new JsStream(f.stream, f.target, f.kind, 'accepting', { sendCredit: f.window, recvWindow: opts.initialWindow });
    s.abort = new AbortController();
    this.hooks.addStream(s);
    this.hooks.openRequest(this.request(s));
  }

  /** LISTEN goes to a server, its answers to a client; the other way round is a protocol error. */
  private onControl(f: codec.ControlFrame): void {
    const toServer = f.type === 'listen';
    if (toServer !== (this.p.opts.role === 'server')) throw new ProtocolError(`${f.type.toUpperCase()} sent to a ${this.p.opts.role}`);
    this.hooks.control(f);
  }

  /** The open request the control plane answers once: a socket, a datagram port, or a refusal. */
  private request(s: JsStream): OpenRequest {
    let answered = false;
    return {
      stream: s.id,
      kind: s.kind,
      target: s.target,
      signal: s.abort!.signal,  // set by onOpen() just before
      accept: (socket) => {
        if (answered || s.isUdp) throw new TwsError('TWS_ERR_USAGE', 'open request answered twice, or a udp request given a socket');
        answered = true;
        if (s.done) { socket.destroy(); return; }
        this.onAccepted(s, socket);
      },
      acceptDatagrams: (port) => {
        if (answered || !s.isUdp) throw new TwsError('TWS_ERR_USAGE', 'open request answered twice, or a tcp request given a datagram port');
        answered = true;
        if (s.done) { port.close(); return; }
        this.markOpen(s);
        this.p.relay.attachPort(s, port);
        s.heldBytes = 0;
        for (const d of s.held.splice(0)) port.send(d);
        if (s.finRecv) this.hooks.finish(s, 'fin', 'info');
      },
      reject: (code, reason) => {
        if (answered) throw new TwsError('TWS_ERR_USAGE', 'open request answered twice');
        answered = true;
        if (s.done) return;
        this.p.sched.send(codec.encodeReset(s.id, code, reason));
        this.hooks.finish(s, `refused: ${reason}`, 'info');
      },
      nameTunnel: (name) => {
        s.tunnel = name;
      },
    };
  }

  /** The acceptor's side: OPEN_OK out, the full window granted (sized by the session budget now, not at OPEN). */
  private markOpen(s: JsStream): void {
    s.state = 'open';
    s.abort = undefined;
    this.p.sched.send(codec.encodeOpenOk(s.id, this.p.flow.grantOpen(s)));
  }

  private onAccepted(s: JsStream, socket: Socket): void {
    this.markOpen(s);
    this.p.relay.attach(s, socket);
    for (const chunk of s.early.take()) this.p.relay.deliver(s, chunk);
    if (s.finRecv) this.p.relay.endLocal(s, socket);
    this.p.log.debug(`stream#${s.id} accepted → ${peerText(s.target)}`);
  }

  private onOpenOk(s: JsStream, window: number): void {
    if (s.state !== 'opening') throw new ProtocolError(`unexpected OPEN_OK for stream ${s.id}`);
    s.state = 'open';
    // The listener's "accepted" goes to the local client before any of the peer's bytes (no payload: no credit).
    if (s.reply && s.local && !s.local.destroyed) s.local.write(s.reply.ok);
    s.sendCredit = window - s.bytesOut;
    this.p.flow.opened(s);
    s.heldBytes = 0;
    for (const d of s.held.splice(0)) this.p.relay.sendDatagram(s, d);
    this.p.sched.credited(s);
    this.p.sched.pump();
  }

  private onData(s: JsStream, payload: Buffer): void {
    if (s.isUdp) throw new ProtocolError(`DATA on udp stream ${s.id}`);
    if (s.state === 'opening') throw new ProtocolError(`DATA before OPEN_OK on stream ${s.id}`);
    if (s.finRecv) throw new ProtocolError(`DATA after FIN on stream ${s.id}`);
    const { live } = this.p;
    live.lastDataAt = live.lastRecv;
    s.lastActive = live.lastRecv;
    this.p.flow.received(s, payload.length);
    if (s.state === 'accepting') s.early.push(payload);
    else this.p.relay.deliver(s, payload);
  }

  private onWindow(s: JsStream, increment: number): void {
    s.sendCredit += increment;
    if (s.sendCredit > MAX_U32) throw new ProtocolError(`stream ${s.id} window overflow`);
    if (s.state !== 'accepting') this.p.sched.wake(s);
  }

  private onFin(s: JsStream): void {
    if (s.finRecv) throw new ProtocolError(`second FIN on stream ${s.id}`);
    if (s.state === 'opening') throw new ProtocolError(`FIN before OPEN_OK on stream ${s.id}`);
    s.finRecv = true;
    if (s.isUdp) {
      // A udp stream has no half-close: FIN simply ends it.
      if (s.state === 'open') this.hooks.finish(s, 'fin', 'info');
      return;
    }
    if (s.state === 'open') this.p.relay.endLocal(s, s.local!);  // an open tcp stream has its socket
  }

  private onReset(s: JsStream, code: number, reason: string): void {
    const what = `peer reset: ${resetText(code, reason)}`;
    s.abort?.abort();
    if (s.state === 'opening' && s.reply) s.answer = pickReply(s.reply, code, reason);
    this.hooks.finish(s, what, code === ResetCode.CANCELLED ? 'debug' : 'info', true);
  }

  private onDatagram(s: JsStream, payload: Buffer): void {
    if (!s.isUdp) throw new ProtocolError(`DATAGRAM on tcp stream ${s.id}`);
    if (s.state === 'opening') throw new ProtocolError(`DATAGRAM before OPEN_OK on stream ${s.id}`);
    this.p.relay.deliverDatagram(s, payload);
  }
}
