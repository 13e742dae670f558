// RFC 6455 frame parser and header writer for the native data plane.
//
// The parser is an explicit state machine over whatever bytes a read()
// returned: it never needs a whole frame in memory. A partial header spills
// into a 14-byte buffer; payload is unmasked in place (in 64-bit words, key
// rotated across reads) and handed to the sink as it arrives; control frames
// (at most 125 bytes) are collected in a small buffer and delivered whole.
// Pure: no syscalls, no allocation, no exceptions. [any thread; one parser
// belongs to one connection]
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "mask.h"
#include "utf8.h"

namespace tws::ws {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Which end of the connection this parser sits on: a server requires masked
// frames from its client, a client requires unmasked frames from its server.
enum class Role { kClient, kServer };

constexpr size_t kMaxControlPayload = 125;
// Frames one message may be split into (ws's maxFragments default): a peer
// sending a message as millions of empty fragments is refused with 1008.
constexpr uint32_t kMaxFragments = 16 * 1024;
constexpr size_t kMaxHeader = 14;

// What went wrong, with the close code the connection should send.
struct ParseError {
  uint16_t close_code = 0;  // 0 = no error
  const char* reason = "";
  explicit operator bool() const { return close_code != 0; }
};

// RFC 6455 §7.4: the codes an endpoint may put in a close frame it sends
// (1005, 1006 and 1015 are reserved for reporting; 1004 and 1016-2999 are
// unassigned). The same set as ws's isValidStatusCode.
inline bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) || (code >= 3000 && code <= 4999);
}

// Checks a received close frame's payload: empty, or a valid code followed by
// a UTF-8 reason. A 1-byte body or a reserved code is 1002, a reason that is
// not UTF-8 is 1007 (as ws answers).
inline ParseError check_close_payload(const uint8_t* p, size_t n) {
  if (n == 0) return {};
  if (n == 1) return {1002, "close frame with a 1-byte body"};
  if (!valid_close_code(static_cast<uint16_t>((p[0] << 8) | p[1]))) return {1002, "invalid close code"};
  if (!valid_utf8(p + 2, n - 2)) return {1007, "close reason is not UTF-8"};
  return {};
}

// The sink receives, in order:
//   void on_message_start(uint8_t opcode)              text or binary message begins
//   void on_message_data(uint8_t* p, size_t n)          unmasked payload, any split
//   void on_message_end()                              last fragment complete
//   void on_control(uint8_t opcode, uint8_t* p, size_t n)  close / ping / pong, whole
//                                                      (a close payload already checked)
// A sink may return early by making `wants_stop()` true; feed() then stops
// consuming and reports how far it got (used when a session closes mid-read).
class Parser {
 public:
  Parser(Role role, uint64_t max_message) : role_(role), max_message_(max_message) {}

  // Consumes up to `len` bytes (unmasking them in place). Returns the number
  // consumed: `len` unless an error occurred or the sink asked to stop.
  template <class Sink>
  size_t feed(uint8_t* data, size_t len, Sink& sink, ParseError* err) {
    size_t pos = 0;
    while (pos < len) {
      if (sink.wants_stop()) return pos;
      switch (state_) {
        case State::kHeader: {
          size_t take = header_needed_ - header_len_;
          if (take > len - pos) take = len - pos;
          std::memcpy(header_ + header_len_, data + pos, take);
          header_len_ += take;
          pos += take;
          if (header_len_ < header_needed_) break;
          *err = on_header_bytes();
          if (*err) return pos;
          if (state_ == State::kHeader) break;  // needed more header bytes
          if (state_ == State::kPayload && is_control_) {
            state_ = State::kControl;
          } else if (state_ == State::kPayload && remaining_ == 0) {
            finish_data_frame(sink);
          }
          if (state_ == State::kControl && remaining_ == 0) {
            *err = deliver_control(sink);
            if (*err) return pos;
          }
          break;
        }
        case State::kPayload: {
          size_t n = remaining_ < len - pos ? static_cast<size_t>(remaining_) : len - pos;
          if (masked_) apply_mask(data + pos, n, mask_, frame_offset_);
          frame_offset_ += n;
          remaining_ -= n;
          flush_start(sink);
          sink.on_message_data(data + pos, n);
          pos += n;
          if (remaining_ == 0) finish_data_frame(sink);
          break;
        }
        case State::kControl: {
          size_t n = remaining_ < len - pos ? static_cast<size_t>(remaining_) : len - pos;
          std::memcpy(control_ + control_len_, data + pos, n);
          control_len_ += n;
          remaining_ -= n;
          pos += n;
          if (remaining_ == 0) {
            *err = deliver_control(sink);
            if (*err) return pos;
          }
          break;
        }
      }
    }
    return pos;
  }

  // True between the first and last fragment of a data message.
  bool in_message() const { return in_message_; }

 private:
  enum class State { kHeader, kPayload, kControl };

  // Called when header_needed_ bytes are buffered; decides whether the header
  // is complete (it may need the extended length and mask first).
  ParseError on_header_bytes() {
    const uint8_t b0 = header_[0];
    const uint8_t b1 = header_[1];
    if (header_len_ == 2) {
      if (b0 & 0x70) return {1002, "RSV bits set"};
      const uint8_t op = b0 & 0x0F;
      const bool fin = b0 & 0x80;
      const bool mask = b1 & 0x80;
      if (role_ == Role::kServer && !mask) return {1002, "unmasked frame from client"};
      if (role_ == Role::kClient && mask) return {1002, "masked frame from server"};
      const uint8_t len7 = b1 & 0x7F;
      if (op >= 0x8) {
        if (op != kClose && op != kPing && op != kPong) return {1002, "unknown control opcode"};
        if (!fin) return {1002, "fragmented control frame"};
        if (len7 > kMaxControlPayload) return {1002, "control frame too long"};
      } else if (op != kContinuation && op != kText && op != kBinary) {
        return {1002, "unknown data opcode"};
      }
      size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (mask ? 4 : 0);
      if (need > 2) {
        header_needed_ = need;
        return {};
      }
    }
    // The whole header is here.
    const uint8_t op = b0 & 0x0F;
    const bool fin = b0 & 0x80;
    masked_ = b1 & 0x80;
    const uint8_t len7 = b1 & 0x7F;
    size_t at = 2;
    uint64_t length = len7;
    // A length in more bytes than it needs is accepted, as ws accepts it; one
    // past the message limit (the top bit set included) is 1009 below.
    if (len7 == 126) {
      length = (uint64_t{header_[2]} << 8) | header_[3];
      at = 4;
    } else if (len7 == 127) {
      length = 0;
      for (int i = 0; i < 8; i++) length = (length << 8) | header_[2 + i];
      at = 10;
    }
    if (masked_) std::memcpy(mask_, header_ + at, 4);
    header_len_ = 0;
    header_needed_ = 2;
    remaining_ = length;
    frame_offset_ = 0;
    is_control_ = op >= 0x8;
    if (is_control_) {
      control_op_ = op;
      control_len_ = 0;
      state_ = State::kPayload;  // feed() switches to kControl
      return {};
    }
    if (op == kContinuation) {
      if (!in_message_) return {1002, "continuation without a message"};
    } else {
      if (in_message_) return {1002, "new message inside a fragmented one"};
      in_message_ = true;
      message_size_ = 0;
      fragments_ = 0;
      start_opcode_ = op;
      pending_start_ = true;
    }
    if (length > max_message_ - message_size_) return {1009, "message too big"};  // no overflow: message_size_ <= max_message_
    message_size_ += length;
    if (++fragments_ > kMaxFragments) return {1008, "too many message fragments"};
    frame_fin_ = fin;
    state_ = State::kPayload;
    return {};
  }

  template <class Sink>
  void finish_data_frame(Sink& sink) {
    // on_message_start goes out with the first payload byte, or here for an
    // empty first fragment, so it always precedes the message's data.
    flush_start(sink);
    state_ = State::kHeader;
    if (frame_fin_) {
      in_message_ = false;
      sink.on_message_end();
    }
  }

  template <class Sink>
  ParseError deliver_control(Sink& sink) {
    if (masked_) apply_mask(control_, control_len_, mask_, 0);
    state_ = State::kHeader;
    if (control_op_ == kClose) {
      ParseError e = check_close_payload(control_, control_len_);
      if (e) return e;
    }
    sink.on_control(control_op_, control_, control_len_);
    return {};
  }

  template <class Sink>
  void flush_start(Sink& sink) {
    if (pending_start_) {
      pending_start_ = false;
      sink.on_message_start(start_opcode_);
    }
  }

 private:
  Role role_;
  uint64_t max_message_;
  State state_ = State::kHeader;
  uint8_t header_[kMaxHeader] = {};
  size_t header_len_ = 0;
  size_t header_needed_ = 2;
  bool masked_ = false;
  uint8_t mask_[4] = {};
  uint64_t remaining_ = 0;
  uint64_t frame_offset_ = 0;
  bool is_control_ = false;
  uint8_t control_op_ = 0;
  uint8_t control_[kMaxControlPayload] = {};
  size_t control_len_ = 0;
  bool in_message_ = false;
  bool pending_start_ = false;
  bool frame_fin_ = false;
  uint8_t start_opcode_ = 0;
  uint64_t message_size_ = 0;
  uint32_t fragments_ = 0;
};

// Writes a frame header into `out` (at least kMaxHeader bytes) and returns its
// length. With a `mask` key (client side) the mask bit and key are written;
// the caller masks the payload with apply_mask(..., key, 0).
inline size_t write_header(uint8_t* out, uint8_t opcode, bool fin, uint64_t length, const uint8_t* mask) {
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | opcode);
  const uint8_t m = mask ? 0x80 : 0;
  size_t at;
  if (length < 126) {
    out[1] = static_cast<uint8_t>(m | length);
    at = 2;
  } else if (length <= 0xFFFF) {
    out[1] = m | 126;
    out[2] = static_cast<uint8_t>(length >> 8);
    out[3] = static_cast<uint8_t>(length);
    at = 4;
  } else {
    out[1] = m | 127;
    for (int i = 0; i < 8; i++) out[2 + i] = static_cast<uint8_t>(length >> (56 - 8 * i));
    at = 10;
  }
  if (mask) {
    std::memcpy(out + at, mask, 4);
    at += 4;
  }
  return at;
}

}  // namespace tws::ws
