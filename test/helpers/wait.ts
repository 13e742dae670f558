/** Waiting for a condition instead of sleeping and hoping: a slow machine only makes a test slower, never wrong. */
import { sleep } from './net';

/**
 * Polls `check` (every 20 ms) until it returns true; resolves true then, or
 * false after `timeoutMs` (default 10 s), so the caller's assertions that
 * follow report what was actually seen.
 */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= end) return false;
    await sleep(20);
  }
}
