/** Picks the engine for `--engine auto|js|native`. */
import { TwsError } from '../util/errors';
import { jsEngine } from './js';
import { createNativeEngine } from './native';
import { loadNativeAddon } from './native-addon';
import type { Engine } from './types';

export const ENGINE_CHOICES = ['auto', 'js', 'native'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

/** Why the native engine cannot be used in this build, or undefined when it can. */
export function nativeUnavailableReason(): string | undefined {
  return loadNativeAddon().error;
}

const natives = new Map<string, Engine>();

/**
 * Returns the engine to run: `native` when unavailable is an error; `auto`
 * takes native when it loads, else js (`onFallback` gets the reason, for
 * the one warning line).
 */
export function selectEngine(choice: EngineChoice, onFallback?: (why: string) => void, threads = 1, busyPollUs = 0): Engine {
  if (choice === 'js') return jsEngine;
  const why = nativeUnavailableReason();
  if (why) {
    if (choice === 'native') {
      throw new TwsError('TWS_ERR_ENGINE_UNAVAILABLE', `the native engine is not available: ${why}; use --engine js or auto`);
    }
    onFallback?.(why);
    return jsEngine;
  }
  const key = `${threads}/${busyPollUs}`;
  let engine = natives.get(key);
  if (!engine) {
    engine = createNativeEngine(loadNativeAddon().addon!, threads, busyPollUs);
    natives.set(key, engine);
  }
  return engine;
}

/**
 * One line for `tws --version`: the engine `choice` runs here ("none" when it cannot), whether native loads, and
 * which binary it is (`local build`, `prebuild linux-arm64`).
 */
export function engineSummary(choice: EngineChoice = 'auto'): string {
  const why = nativeUnavailableReason();
  if (why) return `engine: ${choice === 'native' ? 'none' : 'js'}; native unavailable: ${why}`;
  const { addon, from } = loadNativeAddon();
  const napi = `napi ${addon?.napiVersion}`;
  return choice === 'js' ? `engine: js; native ${napi} available (${from})` : `engine: native, ${napi}, ${from}`;
}
