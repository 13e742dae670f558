// Owned byte buffers and the queues they wait in: what the mux holds for a
// local socket that is slow, and what a session holds for a peer that is.
// Pure: no syscalls. [I/O thread, or a test's]
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace tws {

// A byte range [off, len) of an owned buffer, queued for a write.
struct Buf {
  std::unique_ptr<uint8_t[]> data;
  size_t off = 0;
  size_t len = 0;
  size_t cap = 0;  // bytes allocated; [len, cap) is room to append
  size_t size() const { return len - off; }
};

inline Buf copy_buf(const uint8_t* p, size_t n, size_t cap = 0) {
  Buf b;
  b.cap = std::max(n, cap);
  b.data.reset(new uint8_t[b.cap]);
  if (n) std::memcpy(b.data.get(), p, n);
  b.len = n;
  return b;
}

// A FIFO of Bufs that allocates nothing until used: std::deque allocates
// ~600 bytes up front, which 10,000 idle streams would pay for nothing.
class BufQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  Buf& front() { return items_[head_]; }
  Buf& back() { return items_.back(); }
  void push_back(Buf b) { items_.push_back(std::move(b)); }
  void pop_back() { items_.pop_back(); }
  void pop_front() {
    items_[head_++] = Buf{};
    if (empty()) {
      clear();
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      // A queue that never quite drains (a steadily slow reader) must not grow by a slot per frame.
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  std::vector<Buf>::iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  std::vector<Buf>::iterator end() { return items_.end(); }

 private:
  std::vector<Buf> items_;
  size_t head_ = 0;
};

// Largest buffer small pieces of DATA are gathered into while they wait for a local socket.
constexpr size_t kGatherMax = 16 * 1024;

// Appends bytes for a local socket to `q`, into the last buffer's spare room
// when they fit, else a new buffer twice the last one's size (256 B to
// 16 KiB): a peer sending 1-byte frames to a socket that does not read must
// cost a byte each, not a heap block each (credit counts bytes).
inline void gather(BufQueue& q, const uint8_t* p, size_t n) {
  if (!q.empty()) {
    Buf& b = q.back();
    const size_t fit = std::min(n, b.cap - b.len);
    if (fit) std::memcpy(b.data.get() + b.len, p, fit);
    b.len += fit;
    p += fit;
    n -= fit;
    if (n == 0) return;
  }
  const size_t grow = q.empty() ? 256 : std::min(kGatherMax, std::max<size_t>(256, 2 * q.back().cap));
  q.push_back(copy_buf(p, n, grow));
}

}  // namespace tws
