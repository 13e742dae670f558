/** Error codes users and tests can match on; the message is always one line. */
export type TwsErrorCode =
  /** A setting, file or option is unusable (the message names which). */
  | 'TWS_ERR_CONFIG'
  /** The API was used wrongly (an open request answered twice, say). */
  | 'TWS_ERR_USAGE'
  /** The peer broke TWS2 (ProtocolError); the session closes with its close code. */
  | 'TWS_ERR_PROTOCOL'
  /** `--engine native` where the addon cannot be used. */
  | 'TWS_ERR_ENGINE_UNAVAILABLE'
  /** A listener could not bind. */
  | 'TWS_ERR_LISTEN'
  /** The server could not be reached (TCP, proxy). */
  | 'TWS_ERR_CONNECT'
  /** The WebSocket upgrade failed (an HTTP answer other than a good 101, TLS). */
  | 'TWS_ERR_HANDSHAKE';

/** Base error of tws-native: a code, and the WebSocket close code where one applies. */
export class TwsError extends Error {
  readonly code: TwsErrorCode;
  readonly closeCode: number | undefined;

  constructor(code: TwsErrorCode, message: string, closeCode?: number) {
    super(message);
    this.name = 'TwsError';
    this.code = code;
    this.closeCode = closeCode;
  }
}

/** A TWS2 protocol violation: the session closes with 1002 (or 1009 for size). */
export class ProtocolError extends TwsError {
  constructor(message: string, closeCode = 1002) {
    super('TWS_ERR_PROTOCOL', message, closeCode);
    this.name = 'ProtocolError';
  }
}

/** Throws a TwsError: the one helper for code that fails in an expression (`?? fail(...)`) or many times over. */
export function fail(code: TwsErrorCode, message: string, closeCode?: number): never {
  throw new TwsError(code, message, closeCode);
}

/** Renders any thrown value as one line for users (no stack trace). */
export function errorLine(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
