/** This process's file descriptors, from /proc where Linux has it. */
import { readdirSync, readFileSync } from 'node:fs';

/** Open fds of this process, or undefined where /proc/self/fd is missing. */
export function openFds(): number | undefined {
  try {
    // The listing holds the directory's own fd while it is read.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

/**
 * The soft limit on open files (`ulimit -n`), or undefined. Node raises it
 * to the hard limit at start-up, as servers commonly do, so this is the
 * hard limit the process was started with.
 */
export function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
