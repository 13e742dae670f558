/**
 * TWS2 flow control and window auto-tuning as pure functions: no sockets,
 * no clocks, no state. The js engine calls them; native/core/flow.h states
 * the same rules in C++, and both are checked against one table,
 * test/vectors/flow-control.json. Units: bytes, milliseconds, rates in
 * bytes per ms. Every division of a window or budget rounds down (integer
 * arithmetic, as the native engine does it).
 */
import { EARLY_DATA_LIMIT } from '../protocol/constants';

/** The smallest window a stream is given (bytes): what an opener may send before OPEN_OK. */
export const MIN_WINDOW = EARLY_DATA_LIMIT;
/** Shortest auto-tuning epoch (ms): shorter ones measure bursts, not rates. */
export const TUNE_EPOCH_MS = 20;

export interface AutotuneIn {
  /** Bytes written locally since the epoch began. */
  epochBytes: number;
  /** Time since the epoch began (ms). */
  elapsedMs: number;
  /** The stream's receive window (bytes). */
  window: number;
  /** The largest window auto-tuning may reach (bytes). */
  maxWindow: number;
  /** The peer had less than an eighth of the window left in credit at some point this epoch. */
  starved: boolean;
  /** Received bytes still waiting to be written to the local socket (bytes). */
  queuedBytes: number;
  /** The session's path round trip without queueing (ms); 0 while unknown. */
  baseRttMs: number;
  /** The delivery rate when the window last grew (bytes/ms); 0 before any growth. */
  rateAtGrowth: number;
  /** Room for larger windows under the budgets (bytes): see windowRoom(). */
  room: number;
}

export interface AutotuneOut {
  /** The epoch is over: start a new one (and take `grow`, when not 0). */
  endEpoch: boolean;
  /** Bytes to add to the window (and to return to the peer at once); 0: it stays. */
  grow: number;
  /** The epoch's delivery rate (bytes/ms); 0 while the epoch goes on. */
  rate: number;
}

/**
 * Auto-tuning after bytes were written locally: whether the epoch ends, its
 * rate (bytes/ms), and how many bytes the window grows by (0: none).
 *
 * An epoch lasts at least one window of bytes and TUNE_EPOCH_MS. The window
 * is the limit when the peer (nearly) ran out of credit while our socket kept
 * up (starved, less than half a window queued here), or when rate × 2 × base
 * RTT reaches the window (a long path). Growth continues only while it pays
 * off, i.e. the rate rose by more than a quarter since the last growth: a
 * window grown beyond that only fills queues and delays every other stream.
 * It doubles the window, up to maxWindow, and only when the growth fits the
 * budgets' room.
 */
export function autotune(i: AutotuneIn): AutotuneOut {
  if (i.epochBytes < i.window || i.elapsedMs < TUNE_EPOCH_MS) return { endEpoch: false, grow: 0, rate: 0 };
  const rate = i.epochBytes / i.elapsedMs;
  const keptUp = i.queuedBytes < Math.floor(i.window / 2);
  const limited = (i.starved && keptUp) || rate * 2 * i.baseRttMs >= i.window;
  const grow = Math.min(i.window, i.maxWindow - i.window);
  const grows = grow > 0 && limited && rate > 1.25 * i.rateAtGrowth && grow <= i.room;
  return { endEpoch: true, grow: grows ? grow : 0, rate };
}

/**
 * Credit to return with WINDOW now (bytes; 0: wait): everything written
 * locally and not yet returned, once that is a quarter of the window, and
 * never after the peer's FIN.
 */
export function windowUpdate(i: { unreturned: number; window: number; finRecv: boolean }): number {
  return i.finRecv || i.unreturned < Math.floor(i.window / 4) ? 0 : i.unreturned;
}

/** The most one session may hold of the process budget (bytes): a server's sessions a quarter each, a client's all of it. */
export function sessionShare(processBudget: number, server: boolean): number {
  return server ? Math.floor(processBudget / 4) : processBudget;
}

/**
 * Room for larger windows (bytes): a new stream's initial window above the
 * minimum, auto-tuning growth. Under this session's budget, itself at most
 * half the session's share (the other half keeps room for new streams'
 * minimum windows), and under 3/4 of the process budget (the last quarter is
 * kept for minimum windows too).
 */
export function windowRoom(i: {
  sessionOutstanding: number;
  sessionBudget: number;
  processBudget: number;
  processOutstanding: number;
  server: boolean;
}): number {
  const cap = Math.min(i.sessionBudget, Math.floor(sessionShare(i.processBudget, i.server) / 2));
  const soft = Math.floor(i.processBudget / 4) * 3;
  return Math.max(0, Math.min(cap - i.sessionOutstanding, soft - i.processOutstanding));
}

/** The window for a new stream (bytes): the initial one while there is room, less when there is less, never below MIN_WINDOW. */
export function freshWindow(i: { initialWindow: number; room: number }): number {
  return Math.max(MIN_WINDOW, Math.min(i.initialWindow, i.room));
}

/**
 * The session holds its share of the process budget already, bar one minimum
 * window: its new tcp streams are refused (RESET 5), so one client cannot
 * take the budget from everyone.
 */
export function sessionFull(i: { sessionOutstanding: number; processBudget: number; server: boolean }): boolean {
  return i.sessionOutstanding + MIN_WINDOW > sessionShare(i.processBudget, i.server);
}

/** Not even one more minimum window fits the process budget: new tcp streams are refused (RESET 5). */
export function processFull(i: { processOutstanding: number; processBudget: number }): boolean {
  return i.processOutstanding + MIN_WINDOW > i.processBudget;
}

/** The peer has less than an eighth of the window left in credit (bytes granted minus bytes received). */
export function starved(i: { granted: number; recvd: number; window: number }): boolean {
  return i.granted - i.recvd < Math.floor(i.window / 8);
}
