/** Builds an engine's SessionOptions from the few settings the control plane exposes. */
import type { Logger } from '../util/log';
import { DEFAULT_SESSION_OPTIONS, Role, SessionOptions } from './types';

export function sessionOptions(
  role: Role,
  o: { timeout?: number; udpTimeout?: number; idleTimeout?: number; noUdp?: boolean; maxStreams?: number; logger: Logger },
): SessionOptions {
  return {
    role,
    timeoutMs: o.timeout ?? DEFAULT_SESSION_OPTIONS.timeoutMs,
    initialWindow: DEFAULT_SESSION_OPTIONS.initialWindow,
    maxWindow: DEFAULT_SESSION_OPTIONS.maxWindow,
    maxStreams: o.maxStreams ?? DEFAULT_SESSION_OPTIONS.maxStreams,
    udpTimeoutMs: o.udpTimeout ?? DEFAULT_SESSION_OPTIONS.udpTimeoutMs,
    idleTimeoutMs: o.idleTimeout ?? DEFAULT_SESSION_OPTIONS.idleTimeoutMs,
    sessionBudget: DEFAULT_SESSION_OPTIONS.sessionBudget,
    noUdp: o.noUdp ?? false,
    logger: o.logger,
  };
}
