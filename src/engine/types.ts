/**
 * The engine boundary. The control plane (server/, client/) completes the
 * WebSocket handshake and decides policy; an engine moves the bytes. Every
 * method returns at once; results come back as events. Payload bytes never
 * need to pass through the control plane, so a native engine can implement
 * this by taking over the sockets' file descriptors.
 */
import type { EventEmitter } from 'node:events';
import type { Server, Socket } from 'node:net';
import type { ControlFrame } from '../protocol/frames';
import type { Logger } from '../util/log';

export type Role = 'client' | 'server';
export type EngineName = 'js' | 'native';

/** Per-session tuning; defaults in DEFAULT_SESSION_OPTIONS. */
export interface SessionOptions {
  role: Role;
  /** Peer declared dead after this many ms without receiving anything; pings after half of it. */
  timeoutMs: number;
  /** Window (bytes) granted to the peer for each new stream. */
  initialWindow: number;
  /** Auto-tuning grows a stream's window up to this many bytes. */
  maxWindow: number;
  /** Streams the peer may have open at once; more get RESET 5. */
  maxStreams: number;
  /** A udp stream with no datagram either way for this long ends with RESET 7 (ms). */
  udpTimeoutMs: number;
  /** A tcp stream with no payload either way for this long is reset (RESET 7); 0 = never. */
  idleTimeoutMs: number;
  /**
   * Credit all of a session's streams may have outstanding (granted, not yet
   * written locally) before new streams start at the minimum window (64 KiB)
   * and windows stop growing: bounds what one session can make us buffer.
   */
  sessionBudget: number;
  /**
   * Credit every session of the process may have outstanding (both engines
   * count against one total each): past 3/4 of it windows stop growing and
   * new streams get the minimum; past all of it new streams are refused
   * (RESET 5). Bounds what all peers together can make us buffer.
   */
  processBudget: number;
  /** Refuse udp streams (RESET 1). */
  noUdp: boolean;
  /**
   * A client with reverse tunnels takes streams the server opens (the control
   * plane then checks each target against its tunnels); otherwise a client
   * answers every OPEN with RESET 1. Servers always accept.
   */
  acceptStreams?: boolean;
  /**
   * First id this side opens streams with (default 1 for a client, 2 for a
   * server). Tests start near 2^32 to see a session run out of ids.
   */
  firstStreamId?: number;
  logger: Logger;
}

export const DEFAULT_SESSION_OPTIONS = {
  timeoutMs: 5000,
  initialWindow: 4 * 1024 * 1024,
  maxWindow: 16 * 1024 * 1024,
  maxStreams: 16384,
  udpTimeoutMs: 60000,
  idleTimeoutMs: 0,
  sessionBudget: 64 * 1024 * 1024,
  processBudget: 1024 * 1024 * 1024,
} as const;

/** When fewer stream ids than this are left, a session stops opening streams and its slot reconnects. */
export const STREAM_IDS_RESERVE = 2 * 65536;

/**
 * The local end of a udp stream. Datagrams are few and small, so unlike TCP
 * payload they pass through the control plane: the engine calls `send` for
 * each datagram from the peer and sets `onDatagram` to take local ones.
 */
export interface DatagramPort {
  send(payload: Buffer): void;
  /** The stream ended (idle, reset or session closed). */
  close(): void;
  onDatagram?: (payload: Buffer) => void;
}

/** A stream the peer wants opened; the control plane answers with accept or reject exactly once. */
export interface OpenRequest {
  readonly stream: number;
  readonly kind: number;
  readonly target: string;
  /** Aborted when the peer cancels (RESET) or the session dies before an answer. */
  readonly signal: AbortSignal;
  /** Hands over a connected socket; bytes buffered so far (early data) are delivered first. */
  accept(socket: Socket): void;
  /** For a udp request (kind 2): hands over the local datagram port. */
  acceptDatagrams(port: DatagramPort): void;
  /**
   * Engines that connect targets themselves (native): connects to `address`
   * (an IP literal the server has approved) within `timeoutMs`, then answers
   * as accept() would, or with RESET 2 (connect failed) / 3 (timed out), as
   * connectTarget does. Saves the JavaScript socket and a thread hop per stream.
   */
  dial?(address: string, port: number, timeoutMs: number): void;
  /** Answers with RESET `code`. */
  reject(code: number, reason: string): void;
  /** Names the tunnel the stream belongs to (a client's `reverse 8080`) in its close line and metrics, as openStream's `tunnel` does. */
  nameTunnel(name: string): void;
}

/**
 * What the engine answers on an opened stream's local socket, for a proxy
 * listener (HTTP CONNECT, SOCKS5) whose client waits for the verdict. Sizes
 * are bounded (reply.ts: 512 bytes each, 16 rules); more is a TypeError at
 * openStream.
 */
export interface StreamReply {
  /** Written to the local socket when the peer accepts (OPEN_OK), before any payload from the peer. */
  ok: Buffer;
  /**
   * On RESET before OPEN_OK: the first rule whose code matches (and whose
   * reasonIncludes, if set, occurs in the RESET's reason) gives the bytes
   * written; then the local socket is closed gracefully (FIN, not RST), so
   * the local client reads the answer.
   */
  refused: readonly { code: number; reasonIncludes?: string; bytes: Buffer }[];
  /** When no rule matches, or the stream ends any other way before the answer (the session lost, closed, drained, unavailable). */
  otherwise: Buffer;
}

/** openStream's options. */
export interface OpenStreamOptions {
  /** Names the client's tunnel (`-L 2222:db:22`, `http-connect`) in the stream's close line. */
  tunnel?: string;
  /** The engine answers the local socket itself (see StreamReply). */
  reply?: StreamReply;
}

export interface StreamClosedInfo {
  stream: number;
  target: string;
  /** The client tunnel the stream belongs to, when it was opened with one. */
  tunnel?: string;
  /** Bytes received from the peer and written locally. */
  bytesIn: number;
  /** Bytes read locally and sent to the peer. */
  bytesOut: number;
  /**
   * `fin` for a clean close, otherwise why it was reset. Streams that end
   * with their session say how it ended: `session lost` (the connection went
   * without a close handshake), `session timed out`, `protocol error`,
   * `peer closed the session`, or what the local close() said (`drain timeout`).
   */
  how: string;
}

/** An OPEN the session refused before any stream existed (limits, draining, policy of the engine itself). */
export interface StreamRefusedInfo {
  stream: number;
  target: string;
  code: number;
  reason: string;
}

export interface SessionStats {
  streams: number;
  bytesIn: number;
  bytesOut: number;
  /** Latest ping round trip measured while the link was idle (ms); undefined before the first. */
  rttMs?: number;
}

export interface EngineSession extends EventEmitter {
  readonly id: number;
  /** `tws-rust` for a legacy session (docs/legacy.md); absent for TWS2. */
  readonly protocol?: 'tws-rust';
  readonly streamCount: number;
  /** The peer sent GOAWAY: open no new streams here. */
  readonly peerDraining: boolean;
  readonly closed: boolean;
  /**
   * Opens a stream to `target` carrying `local` (the engine reads it when it
   * has room; paused or not; bytes unshifted onto it go first); returns the
   * stream id, or 0 when the session cannot (then `local` is reset, or
   * answered with `opts.reply.otherwise` and a FIN). Throws a TypeError for
   * a reply out of bounds.
   */
  openStream(local: Socket, target: string, opts?: OpenStreamOptions): number;
  /**
   * Engines that carry file descriptors themselves (native): opens a stream
   * to `target` whose local end is two fds, pipes or sockets (`--stdio`):
   * payload read from `read` (0 bytes read is the FIN) and written to
   * `write` (closed for the peer's FIN). The engine takes copies; returns
   * the stream id, or 0 when it cannot (said in a warning).
   */
  openFdStream?(fds: { read: number; write: number }, target: string, opts?: OpenStreamOptions): number;
  /** Opens a udp stream to `target` for one local peer; returns the stream id (0 if the session cannot). */
  openDatagramStream(port: DatagramPort, target: string, tunnel?: string): number;
  /**
   * Ends a stream this side opened or accepted (a udp stream whose local
   * peer is gone): RESET `code` (default 6, cancelled) to the peer, local
   * state freed, 'stream-closed' with how `closed locally`. Nothing for an
   * unknown or finished id.
   */
  closeStream(id: number, code?: number): void;
  /** Sends a reverse-tunnel frame (LISTEN from a client, LISTEN_OK / LISTEN_ERR from a server); nothing once closed. */
  sendControl(f: ControlFrame): void;
  /**
   * Sends GOAWAY and refuses new streams; the session closes with 1001 once
   * idle. Udp streams end at once (RESET 9): datagrams have no end a drain
   * could wait for. A session that runs out of stream ids does this itself,
   * and says so with its own 'goaway' event (as when the peer drains it).
   */
  goaway(code: number, reason: string): void;
  /**
   * Closes the session with `code` and `reason`; the streams still open end
   * with `how` (default: `reason`) as their StreamClosedInfo.how.
   */
  close(code: number, reason: string, how?: string): void;
  stats(): SessionStats;
  /**
   * Answer ahead (a server's session, on engines that dial themselves:
   * native): `slots` more tcp OPENs whose target is an IP literal in its
   * canonical spelling are dialled within `timeoutMs` with no
   * 'open-request'; each is told afterwards ('opened-ahead'). Only for a
   * policy without an allow-list (src/server/answer-ahead.ts).
   */
  grantAhead?(slots: number, timeoutMs: number): void;
  /** Ends the grant at once; 'ahead-returned' says how many slots went unused. */
  revokeAhead?(): void;
  on(event: 'open-request', listener: (req: OpenRequest) => void): this;
  /** The engine opened and is dialling `stream` to `target` on a slot grantAhead gave; it ends with 'stream-closed'. */
  on(event: 'opened-ahead', listener: (info: { stream: number; target: string }) => void): this;
  on(event: 'ahead-returned', listener: (slots: number) => void): this;
  on(event: 'stream-closed', listener: (info: StreamClosedInfo) => void): this;
  on(event: 'stream-refused', listener: (info: StreamRefusedInfo) => void): this;
  /** A reverse-tunnel frame from the peer (its direction and layout already checked). */
  on(event: 'control', listener: (f: ControlFrame) => void): this;
  on(event: 'goaway', listener: (code: number, reason: string) => void): this;
  on(event: 'idle', listener: () => void): this;
  on(event: 'close', listener: (code: number, reason: string) => void): this;
}

/** What a tws-rust session (docs/legacy.md) needs beyond SessionOptions. */
export interface LegacyOptions {
  /** The password both sides sign with (a legacy client has no user name). */
  passwd: string;
  /** Client: the session's one target, `ip:port` as tws-rust spells it (IPv6 unbracketed). */
  target?: string;
}

/**
 * A tws-rust session. It starts in its handshake (a server waits for the
 * client's AUTH/NOW/TARGET, a client sends it and waits for hello); it emits
 * 'authenticated' (no arguments; listen with once()) once that is done,
 * synchronously, before any stream can open, or 'close' if it fails.
 */
export interface LegacySessionHandle extends EngineSession {
  readonly authenticated: boolean;
  /** Where every stream of the session goes (`host:port`), known once authenticated. */
  readonly target: string;
}

/** What an engine dropped rather than queue without bound, since it started. */
export interface EngineStats {
  /** UDP payloads dropped: the link was full, the other side was behind, or too many waited for a stream to open. */
  datagramsDropped: number;
  /** Native: TLS connections before their upgrade the engine still holds (three fds each). */
  fronts?: number;
}

/**
 * An engine: takes over connections whose WebSocket handshake the control
 * plane has completed, and moves their bytes. Both engines implement it; the
 * control plane never asks which one it has, only what it can do (`tls`,
 * `adoptsTlsSockets`).
 */
export interface Engine {
  readonly name: EngineName;
  stats(): EngineStats;
  /**
   * Takes over an upgraded connection (subprotocol tws2): `socket`, every
   * byte JavaScript already read past the HTTP head (`head`), and bytes the
   * engine must write first (`preamble`: a server's 101; empty for a client).
   * The engine owns the socket from here, whatever happens.
   */
  adopt(socket: Socket, head: Buffer, preamble: Buffer, options: SessionOptions): EngineSession;
  /**
   * Takes over an upgraded connection (no subprotocol) as a tws-rust session
   * (docs/legacy.md), as adopt() does. Both engines carry these on `ws`, in
   * TypeScript (engine/legacy/).
   */
  adoptLegacy(socket: Socket, head: Buffer, preamble: Buffer, options: SessionOptions, legacy: LegacyOptions): LegacySessionHandle;
  /**
   * Whether adopt() takes a socket on which Node runs TLS (a TLSSocket). The
   * js engine does; one that takes over file descriptors cannot (they carry
   * ciphertext) and offers `tls` instead.
   */
  readonly adoptsTlsSockets: boolean;
  /** Present when the engine runs TLS itself: then wss:// goes through it, not through Node's TLS. */
  readonly tls?: EngineTls;
  /**
   * Present when the engine can accept a client's local connections itself
   * (native, one I/O thread): each connection to `server` (listening) becomes
   * a stream to `target` on the session last granted, with no JavaScript in
   * its way; with none, it waits up to `timeoutMs`. `events` hears what
   * happened. Returns undefined when it cannot take this listener (the
   * caller keeps accepting as before). The caller closes `server` once this
   * returns: the engine holds its own reference.
   */
  acceptLocal?(server: Server, target: string, tunnel: string | undefined, timeoutMs: number, events: LocalAcceptEvents): LocalAcceptor | undefined;
}

/** What a LocalAcceptor tells its owner. */
export interface LocalAcceptEvents {
  /**
   * It needs a grant(): it has no session to open streams on (`left` 0), or
   * only `left` ids remain of the last grant (grant ahead, if that is free).
   * `refused`: the session last granted turned out to take no new streams
   * (closing or draining before JavaScript heard), so its grant was dropped.
   */
  wantsSession(left: number, refused: boolean): void;
  /** Connection from `peer` became `stream` of `session`. */
  opened(session: EngineSession, stream: number, peer: string): void;
  /** A connection from `peer` waited `timeoutMs` for a session and was closed. */
  timedOut(peer: string): void;
  /** Accepting failed (`code`: EMFILE, say); it tries again shortly. */
  acceptFailed(code: string): void;
}

/** A listener whose connections the engine accepts (Engine.acceptLocal). */
export interface LocalAcceptor {
  /**
   * New connections become streams of `session` (from here on, until it
   * drains or closes). `ahead`: only if that costs the session nothing
   * (ids that would drain it are kept for when none is left). False when
   * the session could not give any.
   */
  grant(session: EngineSession, ahead?: boolean): boolean;
  close(): void;
}

/** TLS run by the engine itself (native), so no JavaScript is in the data path of a wss:// session. */
export interface EngineTls {
  /**
   * Client: runs TLS over the connected plain `socket`, writes the upgrade
   * `request`, and hands the response head back for the caller to judge.
   */
  adoptTls(socket: Socket, tls: TlsClientSettings, request: Buffer, options: SessionOptions): PendingUpgrade;
  /** Server: a certificate chain and key (PEM) as a context for frontTls, or why they cannot be used. */
  serverContext(cert: string | Buffer, key: string | Buffer): object | string;
  /**
   * Server: runs TLS on an accepted plain `socket` and returns a socket
   * carrying the decrypted bytes, for the HTTP server to read the request
   * from; adopt() on that socket then starts the session on the TLS
   * connection itself. A string says why it cannot. `onTlsFailure` hears why
   * the handshake or a record failed, if it does.
   */
  frontTls(socket: Socket, context: object, onTlsFailure?: (reason: string) => void): Socket | string;
}

/** How an engine that runs TLS itself verifies the server. */
export interface TlsClientSettings {
  /** Trusted roots, PEM (many certificates); unused when insecure. */
  ca: string;
  insecure: boolean;
  /** Sent as SNI (not for IP addresses). */
  servername: string;
  /** The host name or IP address the certificate must be for. */
  verifyName: string;
}

/** A client session whose TLS handshake and upgrade the engine is running. */
export interface PendingUpgrade {
  /** The upgrade response head; rejects with why the connection failed (TLS errors start "TLS: "). */
  readonly response: Promise<string>;
  /** The response was acceptable: the WebSocket session starts. */
  accept(): EngineSession;
  /** The response was not acceptable, or the client is stopping: drops the connection. */
  abort(): void;
}

