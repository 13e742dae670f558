#include "event_queue.h"

namespace tws {

void EventQueue::emit(Event e) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_empty = events_.empty();
    pending_bytes_ += e.text.size() + e.note.size();
    events_.push_back(std::move(e));
    if (events_.size() >= kBacklog || pending_bytes_ >= kBacklogBytes) backlogged_ = true;
  }
  if (was_empty && !muted_.load(std::memory_order_acquire)) notify_();
}

void EventQueue::emit_datagram(uint32_t session, uint32_t stream, const uint8_t* p, size_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_datagram_bytes_ + n > kMaxDatagramBytes) {
      datagram_dropped();
      return;
    }
    pending_datagram_bytes_ += n;
  }
  Event e(Event::kDatagram);
  e.session = session;
  e.stream = stream;
  e.text.assign(reinterpret_cast<const char*>(p), n);
  emit(std::move(e));
}

bool EventQueue::take_caught_up() {
  if (!caught_up_.exchange(false)) return false;
  backlogged_ = false;
  return true;
}

std::vector<Event> EventQueue::take(bool* was_backlogged) {
  std::vector<Event> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    *was_backlogged = events_.size() >= kBacklog || pending_bytes_ >= kBacklogBytes;
    out.swap(events_);
    pending_datagram_bytes_ = 0;
    pending_bytes_ = 0;
  }
  if (*was_backlogged) caught_up_ = true;
  return out;
}

bool EventQueue::admit_outgoing_datagram(size_t n) {
  if (outgoing_bytes_.fetch_add(n, std::memory_order_relaxed) + n > kMaxDatagramBytes) {
    outgoing_bytes_.fetch_sub(n, std::memory_order_relaxed);
    datagram_dropped();
    return false;
  }
  return true;
}

}  // namespace tws
