// A control event for JavaScript: what the data plane tells the control
// plane (a stream the peer wants opened, a stream or session that ended, ...).
// Pure data. [produced on the I/O thread, consumed on the JS thread]
#pragma once

#include <cstdint>
#include <string>

namespace tws {

struct Event {
  enum Kind : uint8_t {
    kOpenRequest, kStreamClosed, kSessionClosed, kGoaway, kIdle, kWindow, kDatagram, kRtt, kUpgradeHead, kTlsFailed,
    kRefused,  // an OPEN the engine refused itself (limits, draining): `code` the RESET code, `text` the target, `note` why
    kControl,  // a reverse-tunnel frame (tws2::control_type): `code` its type, `text` its body (at most 279 bytes)
    kLocalOpened,  // a native listener (io/listener.h) opened stream `stream` of `session`: `code` the listener, `text` the peer
    kListener,     // listener `session` needs a grant (`code` 0; `bytes_in` ids left; `stream` 2: its granted session
                   // takes no new streams), could not accept (`code` the errno),
                   // or (`stream` 1) closed a connection from `text` that waited out the timeout
    kOpenedAhead,    // a server session dialled OPEN `stream` (tcp, target `text`) itself, on a reserve slot JavaScript
                     // granted (WsSession::grant_ahead): in place of kOpenRequest; its end comes as kStreamClosed
    kAheadReturned,  // the session's grant was revoked: `code` reserve slots it had not used
  };
  explicit Event(Kind k) : kind(k) {}
  Kind kind;
  uint32_t session = 0;
  uint32_t stream = 0;
  uint32_t code = 0;        // close code (session) / kind (open request) / round trip in µs (rtt)
  uint64_t bytes_in = 0;    // stream: written locally; session: total
  uint64_t bytes_out = 0;   // stream: sent to the peer; session: total
  std::string text;         // target, close reason, how a stream ended, window note, a datagram, an HTTP head, or why TLS failed
                            // (kTlsFailed: `session` is the front's id)
  std::string note;         // kRefused: why
};

// A stream's end, with its bytes each way: exactly one per stream JavaScript
// opened or was asked to open.
inline Event stream_closed(uint32_t session, uint32_t stream, std::string how, uint64_t in = 0, uint64_t out = 0) {
  Event e(Event::kStreamClosed);
  e.session = session;
  e.stream = stream;
  e.bytes_in = in;
  e.bytes_out = out;
  e.text = std::move(how);
  return e;
}

}  // namespace tws
