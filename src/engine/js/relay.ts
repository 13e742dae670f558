/**
 * The js session's local side: a stream's local socket (tcp) or datagram
 * port (udp). Bytes read locally go to the scheduler; the peer's bytes are
 * written locally, and their credit goes back once the kernel has them.
 */
import type { Socket } from 'node:net';
import { ResetCode } from '../../protocol/constants';
import * as codec from '../../protocol/frames';
import { answerLocal } from '../reply';
import type { DatagramPort } from '../types';
import type { SessionFlow } from './flow';
import { readOnlyWhenAsked } from '../../net/local-reads';
import { resetOrClose } from '../../net/reset';
import type { Scheduler } from './scheduler';
import { HELD_DATAGRAM_BYTES, HELD_DATAGRAMS, JsStream, own } from './stream';

/** What the js engine dropped rather than queue without bound, process-wide (EngineStats). */
export const jsEngineStats = { datagramsDropped: 0 };

/** What the local side tells the session. */
export interface RelayHooks {
  closed(): boolean;
  /** Ends `s` exactly once (see JsSession.finish). */
  finish(s: JsStream, how: string, level: 'info' | 'debug', abortive?: boolean): void;
  /** Payload bytes delivered locally (in) or sent to the peer (out), for the session's counters. */
  countIn(n: number): void;
  countOut(n: number): void;
}

export class LocalRelay {
  constructor(private readonly sched: Scheduler, private readonly flow: SessionFlow, private readonly hooks: RelayHooks) {}

  /**
   * Connects `s` to its local tcp socket: what it reads is queued for
   * sending, and it reads only while the scheduler has room (it decides);
   * its end, error or close ends the stream's side.
   */
  attach(s: JsStream, local: Socket): void {
    s.local = local;
    local.setNoDelay(true);
    readOnlyWhenAsked(local);
    local.on('data', (chunk: Buffer) => {
      s.lastActive = Date.now();
      this.sched.enqueue(s, chunk);
    });
    local.on('end', () => {
      if (s.done) return;
      s.localEnded = true;
      this.maybeFin(s);
    });
    local.on('error', (err: NodeJS.ErrnoException) => {
      if (s.done) return;
      this.sched.send(codec.encodeReset(s.id, ResetCode.CANCELLED, 'local socket error'));
      this.hooks.finish(s, `local error: ${err.code ?? err.message}`, 'info', true);
    });
    local.on('close', () => {
      if (s.done) return;
      if (s.localEnded && s.finRecv) {
        // Both directions ended normally, so Node closed the socket; what it
        // read may still be queued for credit, and the FIN goes after it.
        s.localClosed = true;
        if (s.finSent) this.hooks.finish(s, 'fin', 'info');
      } else {
        this.sched.send(codec.encodeReset(s.id, ResetCode.CANCELLED, 'local socket closed'));
        this.hooks.finish(s, 'local socket closed', 'info');
      }
    });
    this.sched.attach(s);
  }

  /** Connects `s` to its local datagram port. */
  attachPort(s: JsStream, port: DatagramPort): void {
    s.port = port;
    port.onDatagram = (payload) => this.sendDatagram(s, payload);
  }

  /** Sends FIN once the local side ended and everything it read went out. */
  maybeFin(s: JsStream): void {
    if (!s.finDue() || this.hooks.closed()) return;
    s.finSent = true;
    this.sched.send(codec.encodeFin(s.id));
    if (s.localClosed) this.hooks.finish(s, 'fin', 'info');
  }

  /** Writes peer bytes to the local socket; credit goes back only once the kernel has them. */
  deliver(s: JsStream, payload: Buffer): void {
    if (s.local!.destroyed) return;  // only open tcp streams get DATA delivered, and they have a socket
    // While earlier writes are in flight, payloads wait gathered (see Gather); order is kept.
    if (s.writing > 0) {
      s.gathered.push(payload);
      return;
    }
    this.flushGathered(s);
    this.writeLocal(s, own(payload));
  }

  /** The peer sent FIN: what waits is written, then the local socket half-closed. */
  endLocal(s: JsStream, local: Socket): void {
    this.flushGathered(s);
    local.end();
  }

  /** Hands a peer's datagram to the local port, or holds it while the stream is not open yet. */
  deliverDatagram(s: JsStream, payload: Buffer): void {
    s.lastActive = Date.now();
    s.bytesIn += payload.length;
    this.hooks.countIn(payload.length);
    // A view into a socket read (see own()): held here, or queued by the port while its socket is busy.
    if (s.state === 'accepting') return this.hold(s, own(payload));
    s.port!.send(own(payload));  // an open udp stream has its port
  }

  /** Sends one datagram; like UDP it is dropped rather than queued when the link is full. */
  sendDatagram(s: JsStream, payload: Buffer): void {
    if (s.done) return;
    s.lastActive = Date.now();
    if (s.state === 'opening') return this.hold(s, payload);
    if (this.sched.full) {
      jsEngineStats.datagramsDropped++;
      return;
    }
    s.bytesOut += payload.length;
    this.hooks.countOut(payload.length);
    this.sched.send(codec.encodeDatagram(s.id, payload));
  }

  /**
   * The stream ended: its socket is closed (reset when `abortive`, unless
   * the peer's FIN already ended it: see net/reset.ts; answered and closed
   * with a FIN when it never opened and has a reply), its port closed and
   * unhooked.
   */
  release(s: JsStream, abortive: boolean): void {
    if (s.local && !s.local.destroyed) {
      if (s.reply && s.state === 'opening') answerLocal(s.local, s.answer ?? s.reply.otherwise);
      else if (abortive) resetOrClose(s.local);
      else s.local.destroy();
    }
    if (s.port) {
      s.port.onDatagram = undefined;
      s.port.close();
    }
  }

  private flushGathered(s: JsStream): void {
    if (s.gathered.empty || !s.local || s.local.destroyed) return;
    for (const chunk of s.gathered.take()) this.writeLocal(s, chunk);
  }

  private writeLocal(s: JsStream, buf: Buffer): void {
    s.writing++;
    s.local!.write(buf, (err) => {  // called from deliver() and flushGathered(), which checked the socket
      s.writing--;
      if (err || s.done) return;
      s.bytesIn += buf.length;
      this.hooks.countIn(buf.length);
      const increment = this.flow.written(s, buf.length);
      if (increment > 0) this.sched.send(codec.encodeWindow(s.id, increment));
      if (s.writing === 0) this.flushGathered(s);
    });
  }

  /** Holds a datagram for a stream not open yet (it may wait seconds for DNS), within bounds; the rest are dropped and counted. */
  private hold(s: JsStream, payload: Buffer): void {
    if (s.held.length >= HELD_DATAGRAMS || s.heldBytes + payload.length > HELD_DATAGRAM_BYTES) {
      jsEngineStats.datagramsDropped++;
      return;
    }
    s.held.push(payload);
    s.heldBytes += payload.length;
  }
}
