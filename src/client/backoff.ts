/**
 * Capped exponential backoff with full jitter (docs/protocol.md §6):
 * delay = random(0, min(cap, base × 2^n)); n resets only after a session
 * stayed up for `stableMs`.
 */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly baseMs: number,
    private readonly capMs = 30_000,
    private readonly stableMs = 10_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; counts one more failure. */
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.floor(this.random() * ceiling);
  }

  /** Call when a session ends; resets the count if it stayed up long enough. */
  sessionEnded(upForMs: number): void {
    if (upForMs >= this.stableMs) this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}
