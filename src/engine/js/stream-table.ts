/**
 * A js session's streams by id, and the ids it closed recently: a late frame
 * for one of those is ignored, an OPEN for one is id reuse.
 */
import type { JsStream } from './stream';

/** Closed stream ids remembered to tell late frames from id reuse. */
const RECENT_CLOSED = 4096;

export class StreamTable {
  private readonly streams = new Map<number, JsStream>();
  private readonly recentClosed = new Set<number>();

  /** Open streams. */
  get size(): number {
    return this.streams.size;
  }

  /** The open stream with this id, if any. */
  get(id: number): JsStream | undefined {
    return this.streams.get(id);
  }

  /** A copy of the open streams: safe to end streams while walking it. */
  list(): JsStream[] {
    return [...this.streams.values()];
  }

  /** A new stream, by its id. */
  add(s: JsStream): void {
    this.streams.set(s.id, s);
  }

  /** Removes a stream; its id is remembered as closed. */
  remove(s: JsStream): void {
    this.streams.delete(s.id);
    this.rememberClosed(s.id);
  }

  /** The id is open or was closed recently: an OPEN for it reuses an id. */
  inUse(id: number): boolean {
    return this.streams.has(id) || this.recentClosed.has(id);
  }

  /** Remembers an id as closed (also one refused before it had a stream), the oldest forgotten past RECENT_CLOSED. */
  rememberClosed(id: number): void {
    this.recentClosed.add(id);
    if (this.recentClosed.size > RECENT_CLOSED) {
      this.recentClosed.delete(this.recentClosed.values().next().value as number);
    }
  }
}
