/** Programmatic API of tws-native. */
export { createServer, createClient } from './api';
export type { CreateServerOptions, CreateClientOptions, RunningServer, RunningClient, ServerTls } from './api';
export { TwsServer } from './server/server';
export type { TwsServerOptions } from './server/server';
export { TwsClient } from './client/client';
export type { TwsClientOptions } from './client/client';
export { selectEngine } from './engine/select';
export type { EngineChoice } from './engine/select';
export type { Engine, EngineSession } from './engine/types';
export { createLogger, silentLogger } from './util/log';
export type { Logger, LogLevel } from './util/log';
export type { HostPort } from './util/address';
export { TwsError, ProtocolError } from './util/errors';
