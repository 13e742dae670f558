/** Picks the engine for `--engine auto|js|native`. */
import { TwsError } from '../util/errors';
import { jsEngine } from './js';
import { loadNativeAddon } from './native-addon';
import type { Engine } from './types';

export type EngineChoice = 'auto' | 'js' | 'native';

/** Why the native engine cannot be used in this build, or undefined when it can. */
export function nativeUnavailableReason(): string | undefined {
  const { addon, error } = loadNativeAddon();
  if (!addon) return error;
  if (!addon.dataPlane) return 'the addon loads, but its data plane is not implemented yet';
  return undefined;
}

/** Returns the engine to run; `native` when unavailable is an error, `auto` falls back to js. */
export function selectEngine(choice: EngineChoice): Engine {
  const why = nativeUnavailableReason();
  if (choice === 'native' && why) {
    throw new TwsError('TWS_ERR_ENGINE_UNAVAILABLE', `the native engine is not available: ${why}; use --engine js or auto`);
  }
  return jsEngine;
}

/** One line for `tws --version`. */
export function engineSummary(): string {
  const why = nativeUnavailableReason();
  return why ? `engine: js; native unavailable: ${why}` : 'engine: native';
}
