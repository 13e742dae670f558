/**
 * The addon boundary, in one place: everything native/addon.cc exports,
 * every command its NativeEngine takes and every event it delivers, and the
 * loader. The loader refuses an addon whose ABI version is not this file's
 * (an old build left in build/Release, say): tws then falls back to the js
 * engine with one warning line naming the mismatch. Never throws: a failed
 * load is a reason string, ending with what to do (NATIVE_REMEDY).
 */
import { join } from 'node:path';
import type { StreamReply } from './types';

/**
 * The binding's version: native/addon.cc exports the same number as
 * `abiVersion`. Raise both together whenever a command, an argument, an
 * option or an event shape below changes.
 */
export const NATIVE_ABI = 9;

/** SessionOptions as the addon reads them (`adopt`, `adoptTls`, `adoptFront`); a bad value throws a TypeError naming it. */
export interface NativeSessionOptions {
  server: boolean;
  timeoutMs: number;
  initialWindow: number;
  maxWindow: number;
  maxStreams: number;
  udpTimeoutMs: number;
  idleTimeoutMs?: number;
  sessionBudget?: number;
  processBudget?: number;
  noUdp: boolean;
  /** A client takes server-opened streams (reverse tunnels) instead of refusing them. */
  acceptStreams?: boolean;
}

/** An opaque TLS context (a `Napi::External`): built once by tlsClientContext/tlsServerContext, reused per connection. */
export type NativeTlsContext = object;

/** One control event from the I/O thread; they arrive in batches (one array per call of the `onEvents` callback). */
export interface NativeEvent {
  /**
   * open-request: `code` the stream kind, `text` the target.
   * stream-closed: `bytesIn`/`bytesOut` of the stream, `text` how it ended (`fin` or why it was reset).
   * session-closed: `code` the close code, `text` the reason, bytes of the whole session.
   * goaway, idle: the peer drained us; the session has no streams left.
   * window: `text` a window growth, for the debug log. rtt: `code` an idle-link ping round trip (µs).
   * datagram: `payload` one UDP payload of `stream` (the only event carrying bytes; `text` is absent).
   * upgrade-head: `text` the server's answer to an adoptTls upgrade.
   * tls-failed: a frontTls connection failed before its upgrade; `session` is the front's id, `text` why.
   * refused: an OPEN the engine refused itself; `code` the RESET code, `text` the target, `note` why.
   * control: a reverse-tunnel frame (stream 0) checked by the engine: `code` its type, `payload` its body.
   * local-opened: listener `code` accepted a connection from `text` and opened it as `stream` of `session`.
   * listener: listener `session` needs a grant (`code` 0, `stream` 0; `bytesIn` ids left of the last one),
   *   reset a connection from `text` that waited out its timeout (`stream` 1), or could not accept (`code` an errno).
   * opened-ahead: in place of open-request, a tcp OPEN to `text` (a canonical IP literal) that the engine dials itself
   *   on a reserve slot grantAhead gave; its end comes as stream-closed.
   * ahead-returned: revokeAhead took effect; `code` reserve slots were left unused.
   */
  type: 'open-request' | 'stream-closed' | 'session-closed' | 'goaway' | 'idle' | 'window' | 'datagram' | 'rtt' | 'upgrade-head'
    | 'tls-failed' | 'refused' | 'control' | 'local-opened' | 'listener' | 'opened-ahead' | 'ahead-returned';
  session: number;
  stream: number;
  code: number;
  bytesIn: number;
  bytesOut: number;
  text: string;
  note?: string;
  payload?: Buffer;
}

/**
 * How the addon delivers a batch of events (cheaper than an object each):
 * `nums` holds EVENT_NUMBERS per event (its kind's index in the addon's
 * `eventKinds`, session, stream, code, bytesIn, bytesOut), `texts` each
 * one's text or payload, `notes` each one's note (undefined: none has one).
 */
export type RawEvents = (nums: Float64Array, texts: (string | Buffer)[], notes: (string | undefined)[] | undefined) => void;

export const EVENT_NUMBERS = 6;

/** Turns the addon's flat batches back into NativeEvent objects for `onEvents`. */
export function unpackEvents(kinds: readonly NativeEvent['type'][], onEvents: (events: NativeEvent[]) => void): RawEvents {
  return (nums, texts, notes) => {
    const events = new Array<NativeEvent>(texts.length);
    for (let i = 0; i < texts.length; i++) {
      const o = i * EVENT_NUMBERS;
      const t = texts[i]!;
      const text = typeof t === 'string';
      events[i] = {
        type: kinds[nums[o]!]!, session: nums[o + 1]!, stream: nums[o + 2]!, code: nums[o + 3]!, bytesIn: nums[o + 4]!, bytesOut: nums[o + 5]!,
        text: text ? t : '', payload: text ? undefined : t, note: notes?.[i],
      };
    }
    onEvents(events);
  };
}

/** What the addon's NativeEngine counts (`stats()`): drops, and TLS connections held before their upgrade. */
export interface NativeStats {
  datagramsDropped: number;
  fronts: number;
}

/**
 * One NativeEngine: an I/O thread and the sessions on it. Every command
 * returns at once. Handoff commands (adopt, adoptFront, openStream,
 * acceptStream) return 0, or the errno that kept the engine from taking the
 * socket (EMFILE: no fd left to dup it); the caller still owns its socket
 * then. The engine dups every fd it is given (close-on-exec).
 */
export interface NativeCore {
  adopt(session: number, fd: number, head: Buffer, preamble: Buffer, o: NativeSessionOptions): number;
  /** Runs TLS and the upgrade `request` over a connected plain socket; '' or why TLS cannot run on it. */
  adoptTls(session: number, fd: number, context: NativeTlsContext, names: { servername: string; verifyName: string }, request: Buffer,
    o: NativeSessionOptions): string;
  /** The `upgrade-head` of an adoptTls session was acceptable: the WebSocket session starts. */
  upgraded(session: number): void;
  /** Runs server TLS on an accepted socket; returns JavaScript's end of the plaintext socketpair (an fd it now owns), or why it cannot. */
  frontTls(front: number, fd: number, context: NativeTlsContext): number | string;
  /** The upgrade of a frontTls connection: the session takes over the TLS connection; `jsFd` is JavaScript's end of the pair. */
  adoptFront(session: number, front: number, jsFd: number, head: Buffer, preamble: Buffer, o: NativeSessionOptions): number;
  /**
   * `reply`: what the engine answers the local socket with (StreamReply, checked by reply.ts; the addon checks the
   * bounds again and throws a TypeError). With `writeFd`, a split stream: `fd` is only read, `writeFd` written (and
   * closed for the FIN).
   */
  openStream(session: number, stream: number, fd: number, target: string, initial: Buffer, reply?: StreamReply, writeFd?: number): number;
  acceptStream(session: number, stream: number, fd: number, initial: Buffer): number;
  dialStream(session: number, stream: number, address: string, port: number, timeoutMs: number): void;
  rejectStream(session: number, stream: number, code: number, reason: string): void;
  /** Server: `slots` more tcp OPENs to canonical IP literals the session dials without asking (opened-ahead), within `timeoutMs`. */
  grantAhead(session: number, slots: number, timeoutMs: number): void;
  /** Ends the grant at once; `ahead-returned` says how many slots were left. */
  revokeAhead(session: number): void;
  goaway(session: number, code: number, reason: string): void;
  /** Closes with `code` and `reason`; streams still open end with `how` as their stream-closed text. */
  closeSession(session: number, code: number, reason: string, how: string): void;
  openDatagramStream(session: number, stream: number, target: string): void;
  acceptDatagrams(session: number, stream: number): void;
  sendDatagram(session: number, stream: number, payload: Buffer): void;
  /** Ends a stream: RESET `code` to the peer, local state freed (nothing for an unknown id). */
  closeStream(session: number, stream: number, code: number): void;
  /** Sends a reverse-tunnel frame of `type` with `body` on stream 0 (nothing once the session is closing). */
  sendControl(session: number, type: number, body: Buffer): void;
  /** Accepts on a duplicate of listening socket `fd` (see io/listener.h); 0, or the errno of the dup. */
  listen(listener: number, fd: number, target: string, timeoutMs: number): number;
  /** Its streams go to `session` with ids firstId, firstId + 2, … (`count`); session 0 takes the grant back. */
  grantListener(listener: number, session: number, firstId: number, count: number): void;
  closeListener(listener: number): void;
  stats(): NativeStats;
  /** While sessions exist the events callback keeps the process alive; unref when none is left. */
  ref(): void;
  unref(): void;
  /** Stops and joins the I/O thread (the environment's cleanup hook does it too). */
  stop(): void;
}

/** What the parser made of one byte stream (`testing.decodeStream`). */
export interface DecodedStream {
  events: { kind: 'data' | 'frame' | 'control'; type: number; stream: number; body: Buffer }[];
  closeCode: number;
  reason: string;
}

/** Everything native/addon.cc exports. */
export interface NativeAddon {
  /** Must equal NATIVE_ABI; the loader checks it. */
  abiVersion: number;
  napiVersion: number;
  /** `new NativeEngine(unpackEvents(eventKinds, onEvents), { busyPollUs })`: starts one I/O thread. */
  NativeEngine: new (onEvents: RawEvents, o?: { busyPollUs: number }) => NativeCore;
  /** The event kinds' names, indexed as RawEvents numbers them. */
  eventKinds: NativeEvent['type'][];
  /** Trusted roots and TLS settings for adoptTls, built once, or why the roots are unusable. */
  tlsClientContext(caPem: string, insecure: boolean): NativeTlsContext | string;
  /** A server certificate chain and key for frontTls, or why they cannot be used. */
  tlsServerContext(certPem: string, keyPem: string): NativeTlsContext | string;
  /**
   * For tests only (test/native/differential.test.ts); tws itself never calls these.
   * decodeStream parses WebSocket bytes as a server (masked) or client would, decoding TWS2 inside.
   * aheadTarget: where a server session on an answer-ahead grant dials an OPEN's target itself
   * (`host port`), or null when it asks JavaScript (native/core/ahead_target.h).
   */
  testing: {
    decodeStream(bytes: Buffer, server: boolean): DecodedStream;
    aheadTarget(target: string): string | null;
  };
}

/** The addon, which binary it is (`from`), or why it cannot be used. */
export interface LoadedAddon {
  addon?: NativeAddon;
  /** `local build` (build/Release), `prebuild linux-arm64`, or `TWS_NATIVE_ADDON <path>`. */
  from?: string;
  error?: string;
}

let cached: LoadedAddon | undefined;

/** What to do when the addon cannot be used: every reason ends with it. */
export const NATIVE_REMEDY = 'install a C++ compiler and run npm rebuild tws-native (-g for a global install)';

/** Why `addon` cannot be used by this build of tws, or undefined when it can. */
function abiMismatch(addon: Partial<NativeAddon>): string | undefined {
  if (addon.abiVersion === NATIVE_ABI) return undefined;
  const got = typeof addon.abiVersion === 'number' ? `ABI version ${addon.abiVersion}` : 'no ABI version';
  return `the addon has ${got}, this tws needs ${NATIVE_ABI}`;
}

/** Which binary `file` is, in two or three words. */
function describe(file: string, root: string): string {
  const prebuilt = /[\\/]prebuilds[\\/]([^\\/]+)[\\/][^\\/]+$/.exec(file);
  if (prebuilt && file.startsWith(root)) return `prebuild ${prebuilt[1]}`;
  return file.startsWith(join(root, 'build')) ? 'local build' : file;
}

/** The addon (a dev tree's build/Release first, then prebuilds/, or TWS_NATIVE_ADDON), or why it cannot be used. */
export function loadNativeAddon(): LoadedAddon {
  if (cached) return cached;
  const root = join(__dirname, '..', '..');
  let from: string | undefined;
  try {
    // TWS_NATIVE_ADDON picks a specific build (npm run test:asan uses a sanitizer build).
    const explicit = process.env.TWS_NATIVE_ADDON;
    const resolve = (require('node-gyp-build') as { resolve(dir: string): string }).resolve;
    const file = explicit || resolve(root);
    from = explicit ? `TWS_NATIVE_ADDON ${explicit}` : describe(file, root);
    const addon = require(file) as NativeAddon;
    const mismatch = abiMismatch(addon);
    // A stale build/Release is a developer's: npm run build:native rebuilds it.
    const remedy = from === 'local build' ? 'rebuild it: npm run build:native' : NATIVE_REMEDY;
    cached = mismatch ? { from, error: `${from}: ${mismatch}; ${remedy}` } : { addon, from };
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? 'unknown error';
    const why = /No native build was found/.test(msg)
      ? `no prebuilt addon for ${process.platform}-${process.arch}${isMusl() ? ' (musl)' : ''} and no local build`
      : `${from ? `the ${from} does not load: ` : ''}${msg}`;
    cached = { from, error: `${why}; ${NATIVE_REMEDY}` };
  }
  return cached;
}

/** Whether this Node runs on musl (Alpine), where the glibc prebuilds do not apply. */
function isMusl(): boolean {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return process.platform === 'linux' && !report?.header?.glibcVersionRuntime;
}
