/** Builds and checks an engine's SessionOptions from the few settings the control plane exposes. */
import { totalmem } from 'node:os';
import { EARLY_DATA_LIMIT, MAX_U32 } from '../protocol/constants';
import type { Logger } from '../util/log';
import { DEFAULT_SESSION_OPTIONS, Role, SessionOptions } from './types';

const MIB = 1024 * 1024;

/**
 * The process-wide budget of outstanding credit when none is configured: a
 * quarter of the machine's memory, at least 256 MiB and at most 2 GiB.
 */
export function defaultProcessBudget(): number {
  return Math.min(2048 * MIB, Math.max(256 * MIB, Math.floor(totalmem() / 4)));
}

export function sessionOptions(
  role: Role,
  o: {
    timeout?: number; udpTimeout?: number; idleTimeout?: number; noUdp?: boolean; maxStreams?: number;
    /** MiB; 0 or absent = defaultProcessBudget(). */
    bufferBudget?: number;
    logger: Logger;
  },
): SessionOptions {
  const first = process.env.TWS_TEST_FIRST_STREAM_ID;
  return {
    role,
    timeoutMs: o.timeout ?? DEFAULT_SESSION_OPTIONS.timeoutMs,
    initialWindow: DEFAULT_SESSION_OPTIONS.initialWindow,
    maxWindow: DEFAULT_SESSION_OPTIONS.maxWindow,
    maxStreams: o.maxStreams ?? DEFAULT_SESSION_OPTIONS.maxStreams,
    udpTimeoutMs: o.udpTimeout ?? DEFAULT_SESSION_OPTIONS.udpTimeoutMs,
    idleTimeoutMs: o.idleTimeout ?? DEFAULT_SESSION_OPTIONS.idleTimeoutMs,
    sessionBudget: DEFAULT_SESSION_OPTIONS.sessionBudget,
    processBudget: o.bufferBudget ? o.bufferBudget * MIB : defaultProcessBudget(),
    noUdp: o.noUdp ?? false,
    // Test hook only (never documented): start this session's stream ids near the end of their range.
    ...(first ? { firstStreamId: Number(first) } : {}),
    logger: o.logger,
  };
}

/**
 * Checks options at the engine boundary: a TypeError naming the first bad
 * one. (An initial window above the maximum, say, would underflow the
 * auto-tuning arithmetic; a non-integer would corrupt the wire format.)
 */
export function validateSessionOptions(o: SessionOptions): void {
  const bad = (name: string, want: string): never => {
    throw new TypeError(`session options: ${name} must be ${want} (got ${String((o as unknown as Record<string, unknown>)[name])})`);
  };
  const int = (name: keyof SessionOptions, min: number, max: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(name, `an integer from ${min} to ${max}`);
  };
  if (o.role !== 'client' && o.role !== 'server') bad('role', '"client" or "server"');
  int('timeoutMs', 1, MAX_U32);
  int('initialWindow', EARLY_DATA_LIMIT, MAX_U32);
  int('maxWindow', o.initialWindow, MAX_U32);
  int('maxStreams', 1, MAX_U32);
  int('udpTimeoutMs', 1, MAX_U32);
  int('idleTimeoutMs', 0, MAX_U32);
  int('sessionBudget', EARLY_DATA_LIMIT, Number.MAX_SAFE_INTEGER);
  int('processBudget', o.sessionBudget, Number.MAX_SAFE_INTEGER);
  if (o.firstStreamId !== undefined) int('firstStreamId', 1, MAX_U32);
  if (typeof o.noUdp !== 'boolean') bad('noUdp', 'a boolean');
}
