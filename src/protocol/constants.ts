/** TWS2 wire constants (see docs/protocol.md). */
export const SUBPROTOCOL = 'tws2';
export const AUTH_HEADER = 'tws-auth';

export const FrameType = {
  OPEN: 0x01,
  OPEN_OK: 0x02,
  DATA: 0x03,
  WINDOW: 0x04,
  FIN: 0x05,
  RESET: 0x06,
  DATAGRAM: 0x07,
  GOAWAY: 0x08,
  /** Reverse tunnels (docs/protocol.md "Reverse tunnels"): client → server, stream 0. */
  LISTEN: 0x09,
  /** server → client, stream 0: the listener is up. */
  LISTEN_OK: 0x0a,
  /** server → client, stream 0: it is not, and why. */
  LISTEN_ERR: 0x0b,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export const StreamKind = { TCP: 1, UDP: 2 } as const;
export type StreamKindValue = (typeof StreamKind)[keyof typeof StreamKind];

/** RESET / GOAWAY codes. */
export const ResetCode = {
  DENIED: 1,
  CONNECT_FAILED: 2,
  TIMEOUT: 3,
  PROTOCOL_ERROR: 4,
  TOO_MANY_STREAMS: 5,
  CANCELLED: 6,
  IDLE: 7,
  INTERNAL: 8,
  GOING_AWAY: 9,
} as const;

export const RESET_NAMES: Record<number, string> = {
  1: 'denied', 2: 'connect failed', 3: 'timeout', 4: 'protocol error', 5: 'too many streams',
  6: 'cancelled', 7: 'idle', 8: 'internal', 9: 'going away',
};

/**
 * A RESET as logs word it: `connect failed (no route)`, or the reason alone
 * when it starts with the code's name (`connect failed: ECONNREFUSED`, not
 * `connect failed (connect failed: ECONNREFUSED)`). Native's mux words it the same.
 */
export function resetText(code: number, reason: string): string {
  const name = RESET_NAMES[code] ?? `code ${code}`;
  if (!reason || reason === name) return name;
  return reason.startsWith(`${name}: `) ? reason : `${name} (${reason})`;
}

/** LISTEN_ERR codes. */
export const ListenError = {
  NOT_ALLOWED: 1,
  ADDRESS_IN_USE: 2,
  LIMIT: 3,
  BAD_ADDRESS: 4,
  FAILED: 5,
} as const;

export const LISTEN_ERROR_NAMES: Record<number, string> = {
  1: 'not allowed', 2: 'address in use', 3: 'too many listeners', 4: 'bad address', 5: 'listen failed',
};

/** The per-client token of a LISTEN: all sessions of one client process send the same. */
export const LISTEN_TOKEN_LEN = 16;
/** The 101 response header by which a server says it takes LISTEN frames. */
export const FEATURES_HEADER = 'tws-features';
export const FEATURE_REVERSE = 'reverse';

export const HEADER_LEN = 5;
/** Largest DATA payload. */
export const MAX_DATA = 262144;
/** Largest WebSocket message we accept (DATA payload + header room). */
export const MAX_MESSAGE = MAX_DATA + 16;
/**
 * Largest body of any frame but DATA (an OPEN with its target, a DATAGRAM:
 * UDP payloads are at most 65,527 bytes). A longer one is a protocol error.
 */
export const MAX_FRAME_BODY = 65536;
/** Largest RESET / GOAWAY reason in bytes. */
export const MAX_REASON = 120;
/**
 * The longest OPEN target that can name anything: a 253-byte DNS name, ':'
 * and a five-digit port. A longer one is refused (RESET 2) before anything
 * keeps or passes it on (MAX_TARGET in native/core/tws2.h).
 */
export const MAX_TARGET = 259;
/** Data an opener may send before OPEN_OK; also the smallest window an acceptor may grant. */
export const EARLY_DATA_LIMIT = 65536;
export const MAX_U32 = 0xffffffff;

/** WebSocket close codes used by TWS2. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
} as const;
