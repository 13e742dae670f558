/** Error codes users and tests can match on; the message is always one line. */
export type TwsErrorCode =
  | 'TWS_ERR_CONFIG'
  | 'TWS_ERR_USAGE'
  | 'TWS_ERR_AUTH_FAILED'
  | 'TWS_ERR_PROTOCOL'
  | 'TWS_ERR_ENGINE_UNAVAILABLE'
  | 'TWS_ERR_LISTEN'
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

/** Renders any thrown value as one line for users (no stack trace). */
export function errorLine(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
