/** Programmatic API of tws-native. */
export { TwsServer } from './server/server';
export type { TwsServerOptions } from './server/server';
export { TwsClient } from './client/client';
export type { TwsClientOptions } from './client/client';
export { selectEngine } from './engine/select';
export type { Engine, EngineSession } from './engine/types';
export { createLogger, silentLogger } from './util/log';
export { TwsError, ProtocolError } from './util/errors';
