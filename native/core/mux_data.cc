// The mux's data path (see mux.h): DATA from the peer to local sockets,
// local sockets to DATA in round-robin turns, credit returned and windows
// auto-tuned as bytes are written locally.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "flow.h"
#include "mux.h"
#include "out_queue.h"
#include "tws2.h"

namespace tws::mux {

void Mux::on_data(uint32_t sid, uint8_t* p, size_t n) {
  Stream* s = find(sid);
  if (!s) return;  // late DATA for a stream we closed
  if (s->udp) return protocol_error("DATA on a udp stream");
  if (s->state == Stream::State::kOpening) return protocol_error("DATA before OPEN_OK");
  if (s->fin_recv) return protocol_error("DATA after FIN");
  s->recvd += n;
  if (s->recvd > s->recv_granted) return protocol_error("stream exceeded its flow-control window");
  last_data_ = now_;
  s->last_active = now_;
  if (flow::starved(s->recv_granted, s->recvd, s->recv_window)) s->starved = true;
  if (s->state == Stream::State::kAccepting || !s->pending.empty() || !s->local_first.empty() || !s->writable) {
    gather(s->pending, p, n);
    s->pending_bytes += n;
    if (s->state == Stream::State::kOpen) flush_local(*s);
    return;
  }
  const ssize_t w = local_.local_write(*s, p, n);
  if (w < 0) return local_error(*s, static_cast<int>(-w));
  if (static_cast<size_t>(w) < n) {
    s->writable = false;
    gather(s->pending, p + w, n - static_cast<size_t>(w));
    s->pending_bytes += n - static_cast<size_t>(w);
  }
  if (w > 0) consumed(*s, static_cast<size_t>(w));
}

// Writes what the peer sent to the local socket until it would block (the
// reply's ok bytes first: they are no payload, and return no credit).
void Mux::flush_local(Stream& s) {
  if (s.state != Stream::State::kOpen || s.done) return;
  while (!s.local_first.empty() && s.writable) {
    const ssize_t w = local_.local_write(s, reinterpret_cast<const uint8_t*>(s.local_first.data()), s.local_first.size());
    if (w < 0) return local_error(s, static_cast<int>(-w));
    if (w == 0) s.writable = false;
    s.local_first.erase(0, static_cast<size_t>(w));
  }
  if (!s.local_first.empty()) return;
  while (!s.pending.empty() && s.writable) {
    Buf& b = s.pending.front();
    const ssize_t w = local_.local_write(s, b.data.get() + b.off, b.size());
    if (w < 0) return local_error(s, static_cast<int>(-w));
    if (w == 0) {
      s.writable = false;
      break;
    }
    b.off += static_cast<size_t>(w);
    s.pending_bytes -= static_cast<size_t>(w);
    if (b.size() == 0) s.pending.pop_front();
    consumed(s, static_cast<size_t>(w));
  }
  if (s.pending.empty()) maybe_shutdown(s);
}

// Nothing was ever written to an opening stream's socket, so its few bytes
// (Reply::kMaxBytes) fit the empty send buffer: one write, no waiting. What
// the local client sent and nobody will read would turn the close into a RST
// (which can drop the answer): it is read away, within bounds.
void Mux::answer_refusal(Stream& s, const std::string& bytes) {
  if (!bytes.empty() && local_.local_write(s, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) < 0) return;
  local_.local_shutdown(s);
  uint8_t sink[4096];
  for (int i = 0; i < 64; i++) {
    const LocalRead r = local_.local_read(s, sink, sizeof sink);
    if (r.kind != LocalRead::kBytes && r.kind != LocalRead::kInterrupted) break;
  }
}

void Mux::maybe_shutdown(Stream& s) {
  if (!s.fin_recv || s.shut_wr || !s.pending.empty() || !s.local_first.empty() || s.state != Stream::State::kOpen) return;
  local_.local_shutdown(s);
  s.shut_wr = true;
  check_done(s);
}

void Mux::check_done(Stream& s) {
  if (s.fin_sent && s.fin_recv && s.shut_wr && s.pending.empty()) finish(s, "fin", false);
}

void Mux::make_ready(Stream& s) {
  if (s.done) return;
  if (ready_.push_back(&s)) host_.want_pump();
}

void Mux::pump() {
  while (host_.send_backlog() < kSendHighWater && !ready_.empty() && host_.can_send()) {
    Stream* s = ready_.pop_front();
    if (s->state == Stream::State::kAccepting) continue;
    const size_t turn = ready_.empty() ? tws2::kMaxData : kTurnBytes;
    if (!s->initial.empty()) {
      send_initial(*s, turn);
      continue;
    }
    if (!s->readable || s->local_eof) {
      maybe_fin(*s);
      continue;
    }
    read_local(*s, turn);
  }
}

// Sends what JavaScript read before the handoff, as far as credit allows.
void Mux::send_initial(Stream& s, size_t turn) {
  const size_t n = std::min<size_t>({s.initial.size(), turn, static_cast<size_t>(std::max<int64_t>(s.send_credit, 0))});
  if (n == 0) return;  // WINDOW will make it ready again
  Buf b = data_buffer(n);
  std::memcpy(b.data.get() + kHeadroom, s.initial.data(), n);
  s.initial.erase(0, n);
  sent_data(s, std::move(b), n);
  make_ready(s);
}

// One read from the local socket, as much as credit and the turn allow.
void Mux::read_local(Stream& s, size_t turn) {
  const size_t want = std::min<size_t>(turn, static_cast<size_t>(std::max<int64_t>(s.send_credit, 0)));
  if (want == 0) return;  // WINDOW will make it ready again
  Buf b = data_buffer(want);
  const LocalRead r = local_.local_read(s, b.data.get() + kHeadroom, want);
  switch (r.kind) {
    case LocalRead::kBytes:
      // A short read waits in a buffer of its size: queued DATA is counted
      // in payload bytes, so 100-byte reads in 256 KiB blocks would let the
      // send queue hold thousands of times what it counts.
      if (r.n < want / 4) {
        Buf small = data_buffer(r.n);
        std::memcpy(small.data.get() + kHeadroom, b.data.get() + kHeadroom, r.n);
        b = std::move(small);
      }
      sent_data(s, std::move(b), r.n);
      if (r.drained) s.readable = false;  // local_readable() when more comes
      else make_ready(s);  // edge-triggered: keep reading until it would block
      return;
    case LocalRead::kEof:
      s.local_eof = true;
      s.readable = false;
      return maybe_fin(s);
    case LocalRead::kWouldBlock:
      s.readable = false;
      return;
    case LocalRead::kInterrupted:
      return make_ready(s);
    case LocalRead::kError:
      return local_error(s, r.err);
  }
}

void Mux::sent_data(Stream& s, Buf b, size_t n) {
  s.send_credit -= static_cast<int64_t>(n);
  s.bytes_out += n;
  bytes_out_ += n;
  last_data_ = now_;
  s.last_active = now_;
  host_.send_data(s.id, std::move(b), n);
}

void Mux::maybe_fin(Stream& s) {
  if (!s.local_eof || s.fin_sent || !s.initial.empty() || s.done || s.state == Stream::State::kAccepting) return;
  s.fin_sent = true;
  host_.send_frame(tws2::kFin, s.id, nullptr, 0);
  check_done(s);
}

// ---- credit ----

Stream* Mux::add_stream(std::unique_ptr<Stream> s) {
  Stream* sp = s.get();
  if (!sp->udp) credit_.add(static_cast<int64_t>(sp->recv_granted - sp->bytes_in));
  streams_[sp->id] = std::move(s);
  return sp;
}

// Sets the total the peer may send on `s` (a grant), counted against both budgets.
void Mux::set_granted(Stream& s, uint64_t granted) {
  if (!s.udp) credit_.add(static_cast<int64_t>(granted) - static_cast<int64_t>(s.recv_granted));
  s.recv_granted = granted;
}

void Mux::consumed(Stream& s, size_t n) {
  s.bytes_in += n;
  bytes_in_ += n;
  credit_.add(-static_cast<int64_t>(n));
  s.unreturned += n;
  s.epoch_bytes += n;
  if (s.epoch_bytes >= s.recv_window) tune(s);
  const uint64_t back = flow::window_update(s.unreturned, s.recv_window, s.fin_recv);
  if (back == 0) return;
  set_granted(s, s.recv_granted + back);
  uint8_t body[4];
  tws2::write_u32(body, static_cast<uint32_t>(back));
  host_.send_frame(tws2::kWindow, s.id, body, 4);
  s.unreturned = 0;
}

void Mux::tune(Stream& s) {
  flow::TuneInput in;
  in.epoch_bytes = s.epoch_bytes;
  in.elapsed_ms = now_ - s.epoch_start;
  in.window = s.recv_window;
  in.max_window = o_.max_window;
  in.starved = s.starved;
  in.queued_bytes = s.pending_bytes;
  in.base_rtt_ms = base_rtt_;
  in.rate_at_growth = s.rate_at_growth;
  in.room = credit_.window_room();
  const flow::TuneResult r = flow::autotune(in);
  if (!r.end_epoch) return;
  if (r.grow > 0) {
    s.recv_window += r.grow;
    s.unreturned += r.grow;
    s.rate_at_growth = r.rate;
    char note[128];
    std::snprintf(note, sizeof note, "window → %u (%.1f MB/s, base rtt %.2f ms)", s.recv_window, r.rate / 1000, base_rtt_);
    Event e(Event::kWindow);
    e.session = session_;
    e.stream = s.id;
    e.text = note;
    host_.emit(std::move(e));
  }
  s.epoch_start = now_;
  s.epoch_bytes = 0;
  s.starved = false;
}

// Holds a datagram for a stream not open yet, within the per-stream bounds; drops (and counts) the rest.
void Mux::hold_datagram(Stream& s, const uint8_t* p, size_t n) {
  if (s.pending.size() >= kHeldDatagrams || s.pending_bytes + n > kHeldDatagramBytes) return host_.datagram_dropped();
  s.pending.push_back(copy_buf(p, n));
  s.pending_bytes += n;
}

}  // namespace tws::mux
