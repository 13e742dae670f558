/**
 * Flow-control credit the js engine's sessions have granted their peers and
 * not yet written locally, summed over the process: the most all peers
 * together can make it buffer. Checked against SessionOptions.processBudget
 * (the native engine keeps its own total in C++, with the same rules).
 */
import { EARLY_DATA_LIMIT } from '../protocol/constants';

let outstanding = 0;

/** Adds (or with a negative delta, returns) credit to the process total. */
export function addProcessCredit(delta: number): void {
  outstanding += delta;
}

export function processCredit(): number {
  return outstanding;
}

/**
 * Room for larger windows (a new stream's initial window above the minimum,
 * auto-tuning growth): what is left under this session's budget and under
 * 3/4 of the process budget (the last quarter is kept for new streams'
 * minimum windows).
 */
export function windowRoom(sessionOutstanding: number, sessionBudget: number, processBudget: number): number {
  return Math.max(0, Math.min(sessionBudget - sessionOutstanding, Math.floor(processBudget / 4) * 3 - outstanding));
}

/** The most one session may hold of the process budget: a quarter (a client has two sessions by default). */
export function sessionShare(processBudget: number): number {
  return Math.floor(processBudget / 4);
}

/** True when not even one more minimum window fits: new streams are refused (RESET 5). */
export function processFull(processBudget: number): boolean {
  return outstanding + EARLY_DATA_LIMIT > processBudget;
}
