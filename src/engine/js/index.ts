/** The pure-TypeScript engine on `ws`: fallback and reference implementation. */
import type { Engine } from '../types';
import { JsSession } from './session';

export const jsEngine: Engine = {
  name: 'js',
  adopt: (ws, options) => new JsSession(ws, options),
};
