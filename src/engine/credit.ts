/**
 * Flow-control credit the js engine's sessions have granted their peers and
 * not yet written locally, summed over the process: the most all peers
 * together can make it buffer. Checked against SessionOptions.processBudget
 * by the rules in flow-control.ts (the native engine keeps its own total in
 * C++ and checks it by the same rules).
 */
let outstanding = 0;

/** Adds (or with a negative delta, returns) credit to the process total (bytes). */
export function addProcessCredit(delta: number): void {
  outstanding += delta;
}

/** Credit granted by all js sessions of the process and not yet written locally (bytes). */
export function processCredit(): number {
  return outstanding;
}
