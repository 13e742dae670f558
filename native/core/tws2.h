// TWS2 frames inside WebSocket messages (docs/protocol.md), for the native
// data plane. MessageReader sits behind ws::Parser: it reads the 5-byte TWS2
// header (which may arrive split), streams DATA bodies straight through
// without assembling the message, collects the small frames whole, and
// validates them with exactly the rules of src/protocol/frames.ts.
// Pure: no syscalls, no allocation, no exceptions. [any thread]
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "utf8.h"
#include "ws_frame.h"

namespace tws::tws2 {

enum Type : uint8_t {
  kOpen = 0x01,
  kOpenOk = 0x02,
  kData = 0x03,
  kWindow = 0x04,
  kFin = 0x05,
  kReset = 0x06,
  kDatagram = 0x07,
  kGoaway = 0x08,
  // Reverse tunnels (docs/protocol.md), all on stream 0, passed to JavaScript whole.
  kListen = 0x09,     // client → server: request u32, token (16), bind host:port
  kListenOk = 0x0a,   // server → client: request u32, port u16
  kListenErr = 0x0b,  // server → client: request u32, code u16, reason
};

constexpr size_t kListenTokenLen = 16;

inline bool control_type(uint8_t t) { return t >= kListen && t <= kListenErr; }

constexpr size_t kHeaderLen = 5;
constexpr size_t kMaxData = 262144;
constexpr size_t kMaxMessage = kMaxData + 16;
constexpr size_t kMaxReason = 120;
// The longest target that can name anything: a 253-byte DNS name, ':' and a
// five-digit port (an IPv6 literal in brackets is far shorter). A longer
// OPEN target is refused (RESET 2) before anything keeps or passes it on.
constexpr size_t kMaxTarget = 259;

// How many of the first `max` bytes of `s` hold whole UTF-8 sequences.
inline size_t utf8_prefix(const char* s, size_t n, size_t max) {
  if (n <= max) return n;
  size_t r = max;
  while (r > 0 && (static_cast<uint8_t>(s[r]) & 0xC0) == 0x80) r--;
  return r;
}
constexpr uint32_t kEarlyDataLimit = 65536;
// Largest body of any frame but DATA (docs/protocol.md, MAX_FRAME_BODY in
// src/protocol/constants.ts): a DATAGRAM (UDP payloads are at most 65,527
// bytes) or an OPEN with its target. A longer one is a protocol error.
constexpr size_t kMaxSmallBody = 65536;

inline uint32_t read_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint16_t read_u16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void write_u32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

using ::tws::valid_utf8;

// Checks a complete non-DATA frame of a known type; returns a protocol error
// (1002) or none. Unknown types never reach here: they are skipped.
inline ws::ParseError validate(uint8_t type, uint32_t stream, const uint8_t* body, size_t n) {
  auto bad = [](const char* why) { return ws::ParseError{1002, why}; };
  if (control_type(type)) {
    if (stream != 0) return bad("LISTEN frame on a stream other than 0");
    if (n < 6) return bad("LISTEN frame body shorter than 6 bytes");
  } else if (type != kGoaway && stream == 0) {
    return bad("frame on stream 0");
  }
  switch (type) {
    case kOpen:
      if (n < 5) return bad("OPEN body shorter than 5 bytes");
      if (body[4] != 1 && body[4] != 2) return bad("OPEN with unknown kind");
      if (!valid_utf8(body + 5, n - 5)) return bad("OPEN target is not UTF-8");
      return {};
    case kOpenOk:
      if (n != 4) return bad("OPEN_OK body must be 4 bytes");
      if (read_u32(body) < kEarlyDataLimit) return bad("OPEN_OK window below 65536");
      return {};
    case kWindow:
      if (n != 4) return bad("WINDOW body must be 4 bytes");
      if (read_u32(body) == 0) return bad("WINDOW increment of 0");
      return {};
    case kFin:
      if (n != 0) return bad("FIN with a body");
      return {};
    case kReset:
    case kGoaway:
      if (type == kGoaway && stream != 0) return bad("GOAWAY on a stream other than 0");
      if (n < 2) return bad("RESET/GOAWAY body shorter than 2 bytes");
      if (n - 2 > kMaxReason) return bad("reason longer than 120 bytes");
      if (!valid_utf8(body + 2, n - 2)) return bad("reason is not UTF-8");
      return {};
    case kDatagram:
      return {};
    case kListen:
      if (n < 4 + kListenTokenLen + 1 || n - 4 - kListenTokenLen > kMaxTarget) return bad("LISTEN address empty or too long");
      if (!valid_utf8(body + 4 + kListenTokenLen, n - 4 - kListenTokenLen)) return bad("LISTEN address is not UTF-8");
      return {};
    case kListenOk:
      if (n != 6) return bad("LISTEN_OK body must be 6 bytes");
      if (read_u16(body + 4) == 0) return bad("LISTEN_OK with port 0");
      return {};
    case kListenErr:
      if (n - 6 > kMaxReason) return bad("reason longer than 120 bytes");
      if (!valid_utf8(body + 6, n - 6)) return bad("reason is not UTF-8");
      return {};
    default:
      return {};
  }
}

inline bool known_type(uint8_t t) { return t >= kOpen && t <= kListenErr; }

// Receives TWS2 frames. The sink gets:
//   void on_data(uint32_t stream, uint8_t* p, size_t n)     DATA body bytes, any split
//   void on_data_end(uint32_t stream)                       end of one DATA frame
//   void on_frame(uint8_t type, uint32_t stream, uint8_t* body, size_t n)  other known frames, validated
//   bool wants_stop()
// An error (malformed frame, text message) is reported through `error()`;
// the session then closes with its close code.
template <class Sink>
class MessageReader {
 public:
  explicit MessageReader(Sink& sink) : sink_(sink) {}

  // ---- ws::Parser sink interface ----
  void on_message_start(uint8_t opcode) {
    if (error_) return;
    if (opcode != ws::kBinary) {
      error_ = {1002, "text message"};
      return;
    }
    header_len_ = 0;
    body_len_ = 0;
    small_len_ = 0;
  }

  void on_message_data(uint8_t* p, size_t n) {
    if (error_) return;
    if (header_len_ < kHeaderLen) {
      size_t take = kHeaderLen - header_len_ < n ? kHeaderLen - header_len_ : n;
      std::memcpy(header_ + header_len_, p, take);
      header_len_ += take;
      p += take;
      n -= take;
      if (header_len_ < kHeaderLen) return;
      type_ = header_[0];
      stream_ = read_u32(header_ + 1);
      if (type_ == kData && stream_ == 0) {
        error_ = {1002, "DATA on stream 0"};
        return;
      }
    }
    if (n == 0) return;
    body_len_ += n;
    if (type_ == kData) {
      if (body_len_ > kMaxData) {
        error_ = {1002, "DATA payload over 262144 bytes"};
        return;
      }
      sink_.on_data(stream_, p, n);
      return;
    }
    if (!known_type(type_)) return;  // unknown types are skipped whole
    if (small_len_ + n > kMaxSmallBody) {
      error_ = {1002, "frame body too long"};
      return;
    }
    std::memcpy(small_ + small_len_, p, n);
    small_len_ += n;
  }

  void on_message_end() {
    if (error_) return;
    if (header_len_ < kHeaderLen) {
      error_ = {1002, "frame shorter than its 5-byte header"};
      return;
    }
    if (type_ == kData) {
      if (body_len_ == 0) {
        error_ = {1002, "empty DATA frame"};
        return;
      }
      sink_.on_data_end(stream_);
      return;
    }
    if (!known_type(type_)) return;
    ws::ParseError e = validate(type_, stream_, small_, small_len_);
    if (e) {
      error_ = e;
      return;
    }
    sink_.on_frame(type_, stream_, small_, small_len_);
  }

  void on_control(uint8_t opcode, uint8_t* p, size_t n) { sink_.on_control(opcode, p, n); }
  bool wants_stop() const { return error_ || sink_.wants_stop(); }

  const ws::ParseError& error() const { return error_; }

 private:
  Sink& sink_;
  ws::ParseError error_;
  uint8_t header_[kHeaderLen] = {};
  size_t header_len_ = 0;
  uint8_t type_ = 0;
  uint32_t stream_ = 0;
  uint64_t body_len_ = 0;
  uint8_t small_[kMaxSmallBody] = {};
  size_t small_len_ = 0;
};

// Writes the 5-byte TWS2 header.
inline void write_tws2_header(uint8_t* out, uint8_t type, uint32_t stream) {
  out[0] = type;
  write_u32(out + 1, stream);
}

}  // namespace tws::tws2
