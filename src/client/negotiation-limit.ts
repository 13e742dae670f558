/**
 * Bounds the connections a proxy listener (SOCKS5, HTTP CONNECT) holds while
 * they negotiate (greeting, login, request; a request head): in all, and per
 * source address, so idle or slow connections cannot take the client's file
 * descriptors from its other tunnels. A connection beyond the bound is for
 * the caller to close at once; why is logged, rate-limited.
 */
import type { Socket } from 'node:net';
import { addTo } from '../util/counts';
import { sourceKey } from '../util/ip';
import { formatPeer } from '../util/address';
import { Logger, RateLimitedLog } from '../util/log';

/** Connections one listener may have negotiating at once. */
export const MAX_NEGOTIATING = 256;
/** Of those, from one source address (an IPv6 /64: sourceKey). */
export const MAX_NEGOTIATING_PER_SOURCE = 64;

export class NegotiationLimit {
  /** Sources with a connection negotiating: at most `max` entries. */
  private readonly bySource = new Map<string, number>();
  /** Connections negotiating, oldest first, with their source and the function that gives their place back. */
  private readonly held = new Map<Socket, { source: string; release: () => void }>();
  private readonly refusals: RateLimitedLog;

  constructor(
    private readonly name: string,
    logger: Logger,
    private readonly max = MAX_NEGOTIATING,
    private readonly perSource = MAX_NEGOTIATING_PER_SOURCE,
  ) {
    this.refusals = new RateLimitedLog(logger, `${name} connections closed over the negotiation limit`);
  }

  /**
   * Takes a place for `socket` (from `peer`, as logs spell it): returns the
   * function that gives it back (idempotent; the socket's close does it
   * too), or undefined when there is no room, said in a warning: the caller
   * closes the connection. A client that negotiates takes milliseconds, so
   * the oldest connection is the idlest: when its address holds its share
   * already, the address's oldest connection is closed to make room (on
   * loopback every local user shares one address, and idle connections of
   * one must not lock the others out); when the listener is full and
   * another address holds more places than this one, that address's oldest.
   */
  admit(socket: Socket, peer: string): (() => void) | undefined {
    const source = sourceKey(socket.remoteAddress ?? '');
    let full = (this.bySource.get(source) ?? 0) >= this.perSource && !this.evictOldest(source, this.perSource)
      ? `${this.perSource} connections from its address` : '';
    const n = this.bySource.get(source) ?? 0;
    if (!full && this.held.size >= this.max && !this.evictFor(n)) full = `${this.max} connections`;
    if (full) {
      this.refusals.line('warn', `${this.name}: closed the connection from ${peer} at once: already ${full} negotiating`);
      return undefined;
    }
    addTo(this.bySource, source, 1);
    let isHeld = true;
    const release = (): void => {
      if (!isHeld) return;
      isHeld = false;
      socket.off('close', release);
      this.held.delete(socket);
      addTo(this.bySource, source, -1);
    };
    socket.on('close', release);
    this.held.set(socket, { source, release });
    return release;
  }

  /** Closes the oldest connection of the address holding the most places, if it holds more than `mine`; false if none does. */
  private evictFor(mine: number): boolean {
    let top: string | undefined;
    let most = mine;
    for (const [source, count] of this.bySource) if (count > most) [top, most] = [source, count];
    return top !== undefined && this.evictOldest(top, most);
  }

  /** Closes the oldest connection negotiating from `source` (which holds `count`); false if it has none. */
  private evictOldest(source: string, count: number): boolean {
    for (const [socket, h] of this.held) {
      if (h.source !== source) continue;
      this.refusals.line('warn', `${this.name}: closed the oldest connection still negotiating from ${formatPeer(socket)} to make room (its address holds ${count})`);
      h.release();
      socket.destroy();
      return true;
    }
    return false;
  }
}
