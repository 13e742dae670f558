/** The pure-TypeScript engine on `ws`: fallback and reference implementation. */
import type { WsEngine } from '../types';
import { JsSession } from './session';

export const jsEngine: WsEngine = {
  name: 'js',
  handoff: 'ws',
  adopt: (ws, options) => new JsSession(ws, options),
};
