/** The pure-TypeScript engine on `ws`: fallback and reference implementation. */
import type { WsEngine } from '../types';
import { jsEngineStats, JsSession } from './session';

export const jsEngine: WsEngine = {
  name: 'js',
  handoff: 'ws',
  adopt: (ws, options) => new JsSession(ws, options),
  stats: () => ({ ...jsEngineStats }),
};
