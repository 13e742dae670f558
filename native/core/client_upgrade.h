// A client's WebSocket upgrade when the engine does it (over TLS): the
// request went out as the session's preamble; this collects the response
// head from reads of any size, holds it for JavaScript to judge (no
// WebSocket byte is parsed meanwhile), and keeps what was read past it (the
// first frames) for when JavaScript says yes. Pure: the session passes the
// time and the bytes. [I/O thread, or a test's]
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tws {

class ClientUpgrade {
 public:
  static constexpr size_t kMaxHead = 16 * 1024;
  enum class Read { kMore, kHead, kTooLarge };

  // The request is queued; the answer is due by `deadline` (ms).
  void begin(double deadline) {
    state_ = State::kReading;
    deadline_ = deadline;
  }
  bool pending() const { return state_ != State::kNone; }  // no WebSocket yet
  bool reading() const { return state_ == State::kReading; }
  bool held() const { return state_ == State::kHeld; }     // JavaScript judges the head: read nothing more
  bool expired(double now) const { return pending() && now >= deadline_; }

  // Bytes read while reading: kHead once the head is complete (see head()).
  Read take(const uint8_t* p, size_t n) {
    const size_t before = buf_.size();
    buf_.append(reinterpret_cast<const char*>(p), n);
    const size_t end = buf_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end == std::string::npos || end + 4 > kMaxHead) return buf_.size() > kMaxHead ? Read::kTooLarge : Read::kMore;
    head_ = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    state_ = State::kHeld;
    return Read::kHead;
  }
  const std::string& head() const { return head_; }

  // JavaScript accepted the head: the WebSocket starts with `*rest`, the
  // bytes read past the head. False unless a head was held.
  bool accept(std::string* rest) {
    if (state_ != State::kHeld) return false;
    state_ = State::kNone;
    rest->swap(buf_);
    buf_.clear();
    return true;
  }

 private:
  enum class State { kNone, kReading, kHeld };
  State state_ = State::kNone;
  double deadline_ = 0;
  std::string buf_;
  std::string head_;
};

}  // namespace tws
