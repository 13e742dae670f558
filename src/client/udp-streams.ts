/**
 * The udp streams a client-side UDP socket opened (one per local peer, or per
 * SOCKS destination), keyed by whatever names the peer. Closing them ends
 * the streams on both sides at once (closeStream: RESET 6), rather than
 * leaving them to the engines' udp timeout; a budget shared by several
 * owners (a SOCKS listener's associations) caps how many are open at once.
 */
import type { DatagramPort, EngineSession } from '../engine/types';

/** How many udp streams may be open at once, over every owner sharing it. */
export class UdpStreamBudget {
  used = 0;
  constructor(readonly max: number) {}
  get full(): boolean { return this.used >= this.max; }
}

interface Entry {
  port: DatagramPort;
  session: EngineSession;
  id: number;
}

export class UdpStreams {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly budget: UdpStreamBudget) {}

  get size(): number { return this.entries.size; }

  /** Whether no new stream may be opened (the shared budget is spent). */
  get full(): boolean { return this.budget.full; }

  get(key: string): DatagramPort | undefined {
    return this.entries.get(key)?.port;
  }

  /**
   * Opens a udp stream to `target` for `key`, whose peer's datagrams go to
   * `send`; returns the stream id, or 0 when the session cannot. The caller
   * checks `full` first.
   */
  open(key: string, session: EngineSession, send: (payload: Buffer) => void, target: string, tunnel?: string): number {
    const port: DatagramPort = { send, close: () => this.forget(key, port) };
    const id = session.openDatagramStream(port, target, tunnel);
    if (id === 0) return 0;
    this.entries.set(key, { port, session, id });
    this.budget.used++;
    return id;
  }

  /** Ends every stream (RESET 6 to the peer) and forgets them. */
  closeAll(): void {
    for (const [key, e] of [...this.entries]) {
      this.forget(key, e.port);
      e.session.closeStream(e.id);
    }
  }

  /**
   * Forgets every stream without ending it, for an owner closing only as the
   * client stops: the sessions' GOAWAY ends the streams (RESET 9, going away).
   */
  forgetAll(): void {
    for (const [key, e] of [...this.entries]) this.forget(key, e.port);
  }

  /** The stream ended (the engine says so through its port's close, or closeAll did). */
  private forget(key: string, port: DatagramPort): void {
    if (this.entries.get(key)?.port !== port) return;
    this.entries.delete(key);
    this.budget.used--;
  }
}
