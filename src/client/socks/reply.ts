/**
 * What a SOCKS CONNECT is answered with, decided by the engine once the server
 * accepted or refused the stream: the RESET's code (and the reason the server
 * words it with, see server/connect-target.ts) mapped to RFC 1928 §6 codes.
 */
import { ResetCode } from '../../protocol/constants';
import type { StreamReply } from '../../engine/types';
import { encodeReply, Reply } from './messages';

const refused = (code: number, rep: number, reasonIncludes?: string): StreamReply['refused'][number] =>
  ({ code, reasonIncludes, bytes: encodeReply(rep) });

/**
 * The replies of a CONNECT. BND.ADDR:PORT of the success reply is 0.0.0.0:0:
 * the address the server connected from is on another host and means nothing
 * to the client (RFC 1928 lets a CONNECT reply carry it; clients ignore it).
 */
export const CONNECT_REPLY: StreamReply = {
  ok: encodeReply(Reply.SUCCEEDED),
  refused: [
    refused(ResetCode.DENIED, Reply.NOT_ALLOWED),
    refused(ResetCode.CONNECT_FAILED, Reply.CONNECTION_REFUSED, 'ECONNREFUSED'),
    refused(ResetCode.CONNECT_FAILED, Reply.HOST_UNREACHABLE, 'EHOSTUNREACH'),
    refused(ResetCode.CONNECT_FAILED, Reply.NETWORK_UNREACHABLE, 'ENETUNREACH'),
    // A name that does not resolve: "resolve failed: …" (with an allow-list), "connect failed: ENOTFOUND / EAI_AGAIN …" (without).
    refused(ResetCode.CONNECT_FAILED, Reply.HOST_UNREACHABLE, 'resolve failed'),
    refused(ResetCode.CONNECT_FAILED, Reply.HOST_UNREACHABLE, 'ENOTFOUND'),
    refused(ResetCode.CONNECT_FAILED, Reply.HOST_UNREACHABLE, 'EAI_'),
    refused(ResetCode.TIMEOUT, Reply.TTL_EXPIRED),
  ],
  otherwise: encodeReply(Reply.GENERAL_FAILURE),
};
