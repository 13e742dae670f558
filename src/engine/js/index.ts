/** The pure-TypeScript engine on `ws`: fallback and reference implementation. */
import { validateSessionOptions } from '../options';
import type { Engine } from '../types';
import { jsEngineStats, JsSession } from './session';
import { upgradedWebSocket } from './websocket';
import { adoptLegacy, legacyStats } from '../legacy/adopt';

export const jsEngine: Engine = {
  name: 'js',
  // ws reads and writes through whatever Duplex it is given: Node's TLS included.
  adoptsTlsSockets: true,
  adopt(socket, head, preamble, options) {
    validateSessionOptions(options);  // before the socket is touched
    const session = new JsSession(upgradedWebSocket(socket, head, preamble, options.role), options);
    // ws hears the socket fail before it closes (1006), and says nothing of why: the session is told.
    socket.once('error', (err: NodeJS.ErrnoException) => session.connectionFailed(err.code ?? err.message));
    return session;
  },
  adoptLegacy,
  stats: () => ({ datagramsDropped: jsEngineStats.datagramsDropped + legacyStats.datagramsDropped }),
};
