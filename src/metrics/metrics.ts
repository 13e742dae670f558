/**
 * Counters and gauges of one `tws server` / `tws client`, rendered as
 * Prometheus text. Sessions are tracked through their EngineSession events,
 * so both engines report the same things. Byte counters count finished
 * streams (engines report a stream's bytes when it ends).
 */
import type { EngineSession, StreamClosedInfo, StreamRefusedInfo } from '../engine/types';
import { processRows } from './process';

/**
 * Sorts how a stream ended (the engines' `how` text) into a few label values.
 * A peer chooses RESET codes: the ones the protocol names keep their name,
 * any other is `other`, so a peer cannot mint label values.
 */
export function closeKind(how: string): { how: string; resetCode?: string } {
  const peer = /^peer reset: (code \d+|[a-z ]+[a-z])/.exec(how);
  if (peer) return { how: 'peer_reset', resetCode: peer[1]!.startsWith('code ') ? 'other' : peer[1]!.replace(/ /g, '_') };
  if (how === 'fin') return { how: 'fin' };
  if (how.startsWith('refused: ')) return { how: 'refused' };
  if (how.startsWith('local error')) return { how: 'local_error' };
  if (how === 'idle') return { how: 'idle' };
  if (how === 'local socket closed') return { how: 'local_closed' };
  return { how: 'session_ended' };
}

/**
 * The label of a WebSocket close code. A peer chooses it: the codes RFC 6455
 * and IANA define (1000-1015) keep their number, any other is `other`.
 */
export function closeCodeLabel(code: number): string {
  return Number.isInteger(code) && code >= 1000 && code <= 1015 ? String(code) : 'other';
}

/** Distinct `tunnel` label values; any further tunnel counts as `other`. */
export const MAX_TUNNEL_LABELS = 64;

function line(name: string, labels: Record<string, string>, value: number): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n')}"`).join(',');
  return `${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`;
}

export class Metrics {
  private readonly live = new Set<EngineSession>();
  private sessionsOpened = 0;
  private sessionsClosed = new Map<string, number>();
  private reconnects = 0;
  private connectFailures = 0;
  private readonly closed = new Map<string, number>();
  private readonly resets = new Map<string, number>();
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly slotsSeen = new Set<number>();
  /** Per wire protocol (`tws2`, `tws-rust`): sessions opened and finished streams' bytes; the series above count every protocol. */
  private readonly protocols = new Map<string, { opened: number; in: number; out: number }>([['tws2', { opened: 0, in: 0, out: 0 }]]);

  private readonly refused = new Map<string, number>();
  /** Finished streams and their bytes per named tunnel (`-L 2222:db:22`, `socks`, `reverse 8080`). */
  private readonly tunnels = new Map<string, { streams: number; in: number; out: number }>();

  /** `datagramsDropped`: UDP payloads the engine (and server) dropped so far, read when scraped. */
  constructor(
    private readonly role: 'server' | 'client',
    private readonly engine: string,
    private readonly version: string,
    private readonly datagramsDropped: () => number = () => 0,
  ) {}

  /** Follows a new session until it closes; `slot` (client) tells reconnects apart. */
  track(session: EngineSession, slot?: number): void {
    this.sessionsOpened++;
    const protocol = this.protocolOf(session);
    protocol.opened++;
    if (slot !== undefined) {
      if (this.slotsSeen.has(slot)) this.reconnects++;
      this.slotsSeen.add(slot);
    }
    this.live.add(session);
    session.on('stream-closed', (info: StreamClosedInfo) => {
      const k = closeKind(info.how);
      this.closed.set(k.how, (this.closed.get(k.how) ?? 0) + 1);
      if (k.resetCode) this.resets.set(k.resetCode, (this.resets.get(k.resetCode) ?? 0) + 1);
      this.bytesIn += info.bytesIn;
      this.bytesOut += info.bytesOut;
      protocol.in += info.bytesIn;
      protocol.out += info.bytesOut;
      if (info.tunnel !== undefined) this.countTunnel(info);
    });
    session.on('stream-refused', (info: StreamRefusedInfo) => {
      const code = String(info.code);
      this.refused.set(code, (this.refused.get(code) ?? 0) + 1);
    });
    session.on('close', (code: number) => {
      this.live.delete(session);
      const label = closeCodeLabel(code);
      this.sessionsClosed.set(label, (this.sessionsClosed.get(label) ?? 0) + 1);
    });
  }

  /**
   * Tunnel names come from the configuration (and, on a server, from the
   * reverse listeners it allowed); past MAX_TUNNEL_LABELS of them the rest
   * count as `other`, so no peer can mint series.
   */
  private countTunnel(info: StreamClosedInfo): void {
    let name = info.tunnel!;
    if (!this.tunnels.has(name) && this.tunnels.size >= MAX_TUNNEL_LABELS) name = 'other';
    const t = this.tunnels.get(name) ?? { streams: 0, in: 0, out: 0 };
    t.streams++;
    t.in += info.bytesIn;
    t.out += info.bytesOut;
    this.tunnels.set(name, t);
  }

  /** The counters of a session's protocol (a fixed set of values: the engines name it, never a peer). */
  private protocolOf(session: EngineSession): { opened: number; in: number; out: number } {
    const name = session.protocol ?? 'tws2';
    let p = this.protocols.get(name);
    if (!p) this.protocols.set(name, (p = { opened: 0, in: 0, out: 0 }));
    return p;
  }

  connectFailed(): void {
    this.connectFailures++;
  }

  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, rows: [Record<string, string>, number][]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...rows.map(([l, v]) => line(name, l, v)));
    };
    let open = 0;
    // Whole microseconds (the native engine's unit), divided by 1e6 once when printed: a
    // double from one division of integers prints as its short decimal (0.000138), where
    // 0.138 ms / 1000 prints 0.00013800000000000002.
    const rttsUs: number[] = [];
    for (const s of this.live) {
      const st = s.stats();
      open += st.streams;
      if (st.rttMs !== undefined) rttsUs.push(Math.round(st.rttMs * 1000));
    }
    metric('tws_info', 'gauge', 'Role, engine and version of this process.', [[{ role: this.role, engine: this.engine, version: this.version }, 1]]);
    metric('tws_sessions', 'gauge', 'WebSocket sessions up now.', [[{}, this.live.size]]);
    metric('tws_sessions_opened_total', 'counter', 'Sessions established.', [[{}, this.sessionsOpened]]);
    metric('tws_sessions_closed_total', 'counter', 'Sessions ended, by WebSocket close code.',
      [...this.sessionsClosed].map(([code, n]) => [{ code }, n]));
    if (this.role === 'client') {
      metric('tws_reconnects_total', 'counter', 'Sessions re-established by a slot that had one before.', [[{}, this.reconnects]]);
      metric('tws_connect_failures_total', 'counter', 'Failed attempts to bring a session up.', [[{}, this.connectFailures]]);
    }
    const liveBy = new Map<string, number>([...this.protocols.keys()].map((k) => [k, 0]));
    for (const s of this.live) liveBy.set(s.protocol ?? 'tws2', (liveBy.get(s.protocol ?? 'tws2') ?? 0) + 1);
    metric('tws_protocol_sessions', 'gauge', 'Sessions up now, by wire protocol (tws2, or tws-rust with --legacy).',
      [...liveBy].map(([protocol, n]) => [{ protocol }, n]));
    metric('tws_protocol_sessions_opened_total', 'counter', 'Sessions established, by wire protocol.',
      [...this.protocols].map(([protocol, p]) => [{ protocol }, p.opened]));
    metric('tws_protocol_stream_bytes_total', 'counter', 'Payload bytes of finished streams by wire protocol: in = written to local sockets, out = sent to the peer.',
      [...this.protocols].flatMap(([protocol, p]) => [[{ protocol, direction: 'in' }, p.in], [{ protocol, direction: 'out' }, p.out]] as [Record<string, string>, number][]));
    metric('tws_streams', 'gauge', 'Streams open now.', [[{}, open]]);
    metric('tws_streams_closed_total', 'counter', 'Streams ended, by how (fin, peer_reset, refused, local_error, idle, local_closed, session_ended).',
      [...this.closed].map(([how, n]) => [{ how }, n]));
    metric('tws_stream_resets_received_total', 'counter', 'RESETs received from the peer, by code.',
      [...this.resets].map(([code, n]) => [{ code }, n]));
    metric('tws_streams_refused_total', 'counter', 'OPENs the session refused before a stream existed (limits, draining), by RESET code.',
      [...this.refused].map(([code, n]) => [{ code }, n]));
    metric('tws_datagrams_dropped_total', 'counter', 'UDP payloads dropped rather than queued without bound (link full, other side behind).',
      [[{}, this.datagramsDropped()]]);
    metric('tws_stream_bytes_total', 'counter', 'Payload bytes of finished streams: in = written to local sockets, out = sent to the peer.',
      [[{ direction: 'in' }, this.bytesIn], [{ direction: 'out' }, this.bytesOut]]);
    metric('tws_tunnel_streams_closed_total', 'counter', 'Streams ended, by the tunnel that carried them (-L, socks, http-connect, stdio, reverse).',
      [...this.tunnels].map(([tunnel, v]) => [{ tunnel }, v.streams]));
    metric('tws_tunnel_bytes_total', 'counter', 'Payload bytes of finished streams by tunnel: in = written to local sockets, out = sent to the peer.',
      [...this.tunnels].flatMap(([tunnel, v]) => [[{ tunnel, direction: 'in' }, v.in], [{ tunnel, direction: 'out' }, v.out]] as [Record<string, string>, number][]));
    const meanUs = Math.round(rttsUs.reduce((a, b) => a + b, 0) / rttsUs.length);
    metric('tws_ping_rtt_seconds', 'gauge', 'Latest idle-link ping round trip of the sessions up now.',
      rttsUs.length ? [[{ stat: 'mean' }, meanUs / 1e6], [{ stat: 'max' }, Math.max(...rttsUs) / 1e6]] : []);
    for (const [name, type, help, v] of processRows()) metric(name, type, help, [[{}, v]]);
    return `${out.join('\n')}\n`;
  }
}
