/**
 * The js session's flow control: what the peer may still send on each
 * stream, counted against the session's and the process's budgets, and the
 * auto-tuning of receive windows. The rules are the pure functions of
 * ../flow-control.ts; this keeps the counts they are applied to.
 */
import { ProtocolError } from '../../util/errors';
import type { Logger } from '../../util/log';
import { addProcessCredit, processCredit } from '../credit';
import * as rules from '../flow-control';
import type { SessionOptions } from '../types';
import type { JsStream } from './stream';

export class SessionFlow {
  /** Credit granted on tcp streams and not yet written locally (bytes; also counted process-wide). */
  private outstanding = 0;
  private readonly server: boolean;

  /** `baseRttMs` gives the session's path round trip without queueing (ms; 0 while unknown). */
  constructor(private readonly opts: SessionOptions, private readonly log: Logger, private readonly baseRttMs: () => number) {
    this.server = opts.role === 'server';
  }

  /** This session holds its share of the process budget already: its new tcp streams are refused. */
  sessionFull(): boolean {
    return rules.sessionFull({ sessionOutstanding: this.outstanding, processBudget: this.opts.processBudget, server: this.server });
  }

  /** The process budget has no room for one more minimum window: new tcp streams are refused. */
  processFull(): boolean {
    return rules.processFull({ processOutstanding: processCredit(), processBudget: this.opts.processBudget });
  }

  /** The window for a new stream (bytes): the initial one while the budgets have room, else less, at least the minimum. */
  freshWindow(): number {
    return rules.freshWindow({ initialWindow: this.opts.initialWindow, room: this.windowRoom() });
  }

  /** A new stream: what the peer may already send on it counts against the budgets. */
  track(s: JsStream): void {
    if (!s.isUdp) this.credit(s.recvGranted - s.bytesIn);
  }

  /** A stream ended: what it was granted and did not write locally is given back. */
  release(s: JsStream): void {
    if (!s.isUdp) this.credit(-(s.recvGranted - s.bytesIn));
  }

  /** The acceptor's side opens `s`: its full window is granted, sized by the budgets now (not at OPEN); returns it (bytes). */
  grantOpen(s: JsStream): number {
    s.recvWindow = s.isUdp ? this.opts.initialWindow : this.freshWindow();
    this.setGranted(s, s.recvWindow);
    s.epochStart = performance.now();
    return s.recvWindow;
  }

  /** The opener's side: the peer accepted `s`, the first auto-tuning epoch begins. */
  opened(s: JsStream): void {
    s.epochStart = performance.now();
  }

  /** DATA of `n` bytes arrived on `s`: a peer past its credit is a protocol error; one nearly out of it is starved. */
  received(s: JsStream, n: number): void {
    s.recvd += n;
    if (s.recvd > s.recvGranted) throw new ProtocolError(`stream ${s.id} exceeded its flow-control window`);
    if (s.state !== 'accepting' && rules.starved({ granted: s.recvGranted, recvd: s.recvd, window: s.recvWindow })) s.starved = true;
  }

  /**
   * `n` bytes of `s` were written to its local socket: their credit is
   * freed, the window may grow, and the credit to return with WINDOW now is
   * returned (bytes; 0: none yet).
   */
  written(s: JsStream, n: number): number {
    this.credit(-n);
    s.unreturned += n;
    s.epochBytes += n;
    const now = performance.now();
    const baseRtt = this.baseRttMs();
    const tune = rules.autotune({
      epochBytes: s.epochBytes,
      elapsedMs: now - s.epochStart,
      window: s.recvWindow,
      maxWindow: this.opts.maxWindow,
      starved: s.starved,
      queuedBytes: (s.local?.writableLength ?? 0) + s.gathered.bytes,
      baseRttMs: baseRtt,
      rateAtGrowth: s.rateAtGrowth,
      room: this.windowRoom(),
    });
    if (tune.endEpoch) {
      if (tune.grow > 0) {
        s.recvWindow += tune.grow;
        s.unreturned += tune.grow;
        s.rateAtGrowth = tune.rate;
        if (this.log.enabled('debug')) {
          this.log.debug(`stream#${s.id} window → ${s.recvWindow} (${(tune.rate / 1000).toFixed(1)} MB/s, base rtt ${baseRtt.toFixed(2)} ms)`);
        }
      }
      s.epochStart = now;
      s.epochBytes = 0;
      s.starved = false;
    }
    const increment = rules.windowUpdate({ unreturned: s.unreturned, window: s.recvWindow, finRecv: s.finRecv });
    if (increment > 0) {
      this.setGranted(s, s.recvGranted + increment);
      s.unreturned = 0;
    }
    return increment;
  }

  /** Room for larger windows under this session's and the process's budgets (bytes). */
  private windowRoom(): number {
    return rules.windowRoom({
      sessionOutstanding: this.outstanding,
      sessionBudget: this.opts.sessionBudget,
      processBudget: this.opts.processBudget,
      processOutstanding: processCredit(),
      server: this.server,
    });
  }

  /** Sets the total the peer may send on `s` (a grant), counted against both budgets. */
  private setGranted(s: JsStream, granted: number): void {
    if (!s.isUdp) this.credit(granted - s.recvGranted);
    s.recvGranted = granted;
  }

  private credit(delta: number): void {
    this.outstanding += delta;
    addProcessCredit(delta);
  }
}
