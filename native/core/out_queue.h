// What a session has to send its peer, in WebSocket frames, and in which
// order: the preamble (the 101, or the client's upgrade request) first and
// whole; then pings and pongs ahead of queued messages but never inside a
// partly written one; then messages (TWS2 frames, DATA and the rest, and the
// close frame) in order. Pure: the caller writes what next() offers and says
// how much went with advance(). [I/O thread, or a test's]
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>

#include "buffers.h"
#include "mask.h"
#include "tws2.h"
#include "ws_frame.h"

namespace tws {

// Room in front of DATA read from a local socket for the WS and TWS2 headers.
constexpr size_t kHeadroom = ws::kMaxHeader + tws2::kHeaderLen;

// One whole WebSocket frame; `key` masks it (a client's) or is null (a server's).
inline Buf make_ws_frame(uint8_t op, const uint8_t* p, size_t n, const uint8_t* key) {
  Buf b = alloc_buf(ws::kMaxHeader + n);
  const size_t h = ws::write_header(b.data.get(), op, true, n, key);
  if (n) std::memcpy(b.data.get() + h, p, n);
  if (key) apply_mask(b.data.get() + h, n, key, 0);
  b.len = h + n;
  return b;
}

// A buffer for up to `max_payload` DATA bytes at kHeadroom; seal_data_frame adds the headers.
inline Buf data_buffer(size_t max_payload) { return alloc_buf(kHeadroom + max_payload); }
static_assert(kHeadroom + tws2::kMaxData <= pool::kBlock, "a whole DATA frame fits a pooled block");

// Puts the TWS2 and WS headers right in front of `n` payload bytes at
// kHeadroom, so header and payload go out in one contiguous write.
inline void seal_data_frame(Buf& b, uint32_t stream, size_t n, const uint8_t* key) {
  uint8_t* t = b.data.get() + kHeadroom - tws2::kHeaderLen;
  tws2::write_tws2_header(t, tws2::kData, stream);
  const size_t payload = tws2::kHeaderLen + n;
  uint8_t hdr[ws::kMaxHeader];
  const size_t h = ws::write_header(hdr, ws::kBinary, true, payload, key);
  std::memcpy(t - h, hdr, h);
  if (key) apply_mask(t, payload, key, 0);
  b.off = kHeadroom - tws2::kHeaderLen - h;
  b.len = kHeadroom + n;
}

class OutQueue {
 public:
  // The preamble goes first and whole: no pong may overtake it, and
  // drop_unsent() keeps it.
  void push_preamble(Buf b) {
    normal_bytes_ += b.size();
    normal_.push_front(std::move(b));
    preamble_pending_ = true;
  }
  // A message, in order with the others.
  void push(Buf b) {
    normal_bytes_ += b.size();
    normal_.push_back(std::move(b));
  }
  // A ping or pong. Only the latest pong owed is kept (RFC 6455 §5.5.3
  // allows it): a peer that pings and never reads cannot make pongs pile up.
  void push_control(Buf b) {
    if ((b.data[b.off] & 0x0F) == ws::kPong) {
      for (Buf& q : urgent_) {
        if (q.off == 0 && (q.data[0] & 0x0F) == ws::kPong) {
          urgent_bytes_ -= q.size();
          q = std::move(b);
          urgent_bytes_ += q.size();
          return;
        }
      }
    }
    urgent_bytes_ += b.size();
    urgent_.push_back(std::move(b));
  }

  // Drops messages that have not started going out (after a protocol error);
  // a partly written one must finish, or the WebSocket framing breaks.
  void drop_unsent() {
    const bool keep_front = !normal_.empty() && (normal_.front().off > 0 || preamble_pending_);
    while (normal_.size() > (keep_front ? 1u : 0u)) {
      normal_bytes_ -= normal_.back().size();
      normal_.pop_back();
    }
  }

  // Fills `iov` with what goes next (at most `max` buffers): a partly written
  // message or the preamble first, else one control frame, else messages.
  int next(iovec* iov, int max) {
    if (preamble_pending_ || (!normal_.empty() && normal_.front().off > 0 && normal_partial_)) chosen_ = &normal_;
    else if (!urgent_.empty()) chosen_ = &urgent_;
    else chosen_ = &normal_;
    int cnt = 0;
    for (auto it = chosen_->begin(); it != chosen_->end() && cnt < max; ++it) {
      iov[cnt].iov_base = it->data.get() + it->off;
      iov[cnt].iov_len = it->size();
      cnt++;
      // One control frame, or the preamble alone, then priorities are checked again.
      if (chosen_ == &urgent_ || preamble_pending_) break;
    }
    return cnt;
  }

  // `n` bytes of what next() offered were written.
  void advance(size_t n) {
    std::deque<Buf>& q = *chosen_;
    while (n > 0) {
      Buf& b = q.front();
      const size_t take = std::min(n, b.size());
      b.off += take;
      n -= take;
      if (&q == &normal_) normal_bytes_ -= take;
      else urgent_bytes_ -= take;
      if (b.size() == 0) {
        q.pop_front();
        if (&q == &normal_) preamble_pending_ = false;  // the preamble is normal_'s first buffer
      }
    }
    normal_partial_ = !normal_.empty() && &q == &normal_ && normal_.front().off > 0;
  }

  bool empty() const { return normal_.empty() && urgent_.empty(); }
  // Bytes of messages waiting (DATA included): what pacing looks at.
  size_t message_bytes() const { return normal_bytes_; }
  // Everything waiting, control frames included: what the read gate looks at.
  size_t bytes() const { return normal_bytes_ + urgent_bytes_; }

 private:
  std::deque<Buf> urgent_;
  size_t urgent_bytes_ = 0;
  std::deque<Buf> normal_;
  size_t normal_bytes_ = 0;
  bool preamble_pending_ = false;  // normal_'s first buffer is the preamble
  bool normal_partial_ = false;    // normal_'s first buffer is partly written: it goes on before anything else
  std::deque<Buf>* chosen_ = &normal_;
};

}  // namespace tws
