// Collects an HTTP response head (the answer to a client's upgrade request)
// from reads of any size; what follows it (the first WebSocket frames) is
// kept for later. Pure. [I/O thread, or a test's]
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tws {

class HttpHead {
 public:
  enum class Status { kMore, kDone, kTooLarge };
  explicit HttpHead(size_t max) : max_(max) {}

  Status append(const uint8_t* p, size_t n) {
    const size_t before = buf_.size();
    buf_.append(reinterpret_cast<const char*>(p), n);
    const size_t end = buf_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end == std::string::npos || end + 4 > max_) return buf_.size() > max_ ? Status::kTooLarge : Status::kMore;
    head_ = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    return Status::kDone;
  }
  // After kDone: the head, and the bytes read past it (taken once).
  const std::string& head() const { return head_; }
  std::string take_rest() {
    std::string r;
    r.swap(buf_);
    return r;
  }

 private:
  size_t max_;
  std::string buf_;
  std::string head_;
};

}  // namespace tws
