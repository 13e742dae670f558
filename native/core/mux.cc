// The TWS2 mux, sans I/O (see mux.h): frames from the peer, commands from
// the control plane, stream lifecycle. The data path is in mux_data.cc.
#include "mux.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "errno_name.h"
#include "tws2.h"

namespace tws::mux {

namespace {
const char* const kResetNames[] = {"", "denied", "connect failed", "timeout", "protocol error", "too many streams",
                                    "cancelled", "idle", "internal", "going away"};
}  // namespace

size_t coded_body(uint8_t* body, uint16_t code, const std::string& reason) {
  body[0] = static_cast<uint8_t>(code >> 8);
  body[1] = static_cast<uint8_t>(code);
  const size_t r = tws2::utf8_prefix(reason.data(), reason.size(), tws2::kMaxReason);
  std::memcpy(body + 2, reason.data(), r);
  return 2 + r;
}

Stream::Stream(uint32_t id_, std::string target_, State st, int64_t credit, uint32_t window)
    : id(id_), target(std::move(target_)), state(st), send_credit(credit),
      recv_granted(st == State::kAccepting ? tws2::kEarlyDataLimit : window), recv_window(window) {}

Mux::Mux(MuxHost& host, LocalIo& local, uint32_t session, const SessionOptions& o, std::atomic<int64_t>& process_credit)
    : host_(host), local_(local), session_(session), o_(o), credit_(o_, process_credit) {}

Stream* Mux::find(uint32_t sid) {
  auto it = streams_.find(sid);
  return it == streams_.end() || it->second->done ? nullptr : it->second.get();
}

// ---- from the peer ----

void Mux::on_frame(uint8_t type, uint32_t sid, uint8_t* body, size_t n) {
  switch (type) {
    case tws2::kOpen:
      return on_open(sid, tws2::read_u32(body), body[4], std::string(reinterpret_cast<char*>(body + 5), n - 5));
    case tws2::kGoaway:
      return on_goaway();
    case tws2::kListen:
    case tws2::kListenOk:
    case tws2::kListenErr:
      return on_control(type, body, n);
    default:
      break;
  }
  Stream* s = find(sid);
  if (!s) return;
  switch (type) {
    case tws2::kOpenOk:
      return on_open_ok(*s, tws2::read_u32(body));
    case tws2::kWindow:
      s->send_credit += tws2::read_u32(body);
      if (s->send_credit > 0xFFFFFFFFll) return protocol_error("window overflow");
      if (s->state != Stream::State::kAccepting) make_ready(*s);
      return;
    case tws2::kFin:
      return on_fin(*s);
    case tws2::kReset:
      return on_reset(*s, tws2::read_u16(body), body + 2, n - 2);
    case tws2::kDatagram:
      return on_datagram(*s, body, n);
    default:
      return;
  }
}

void Mux::on_open(uint32_t sid, uint32_t window, uint8_t kind, std::string target) {
  const uint32_t peer_parity = o_.server ? 1 : 0;
  if (sid % 2 != peer_parity) return protocol_error("OPEN with an id of the wrong parity");
  if (streams_.count(sid) || recent_closed_set_.count(sid)) return protocol_error("OPEN for a stream id already used");
  static_assert(tws2::kMaxTarget == 259, "the refusal reason names the bound");
  if (target.size() > tws2::kMaxTarget) {
    target.resize(tws2::utf8_prefix(target.data(), target.size(), tws2::kMaxTarget));
    return refuse(sid, 2, "bad target: longer than 259 bytes", std::move(target));
  }
  const bool udp = kind == 2;
  if (draining_) return refuse(sid, 9, "going away", std::move(target));
  if (!o_.server && !o_.accept_streams) return refuse(sid, 1, "client accepts no streams", std::move(target));
  if (udp && o_.no_udp) return refuse(sid, 1, "udp is disabled on this server", std::move(target));
  if (streams_.size() >= o_.max_streams) return refuse(sid, 5, "too many streams", std::move(target));
  if (!udp && credit_.process_full()) return refuse(sid, 5, "memory budget reached", std::move(target));
  if (!udp && credit_.session_full()) return refuse(sid, 5, "session memory share reached", std::move(target));
  // The receive window is sized when OPEN_OK goes out (mark_open), from the budgets then.
  auto s = std::make_unique<Stream>(sid, target, Stream::State::kAccepting, window, o_.initial_window);
  s->udp = udp;
  add_stream(std::move(s));
  Event e{Event::kOpenRequest};
  e.session = session_;
  e.stream = sid;
  e.code = kind;
  e.text = std::move(target);
  host_.emit(std::move(e));
}

// Refused here, without asking JavaScript; it hears of it (for the log and metrics) all the same.
void Mux::refuse(uint32_t sid, uint16_t code, const char* why, std::string target) {
  remember_closed(sid);
  send_reset(sid, code, why);
  Event e{Event::kRefused};
  e.session = session_;
  e.stream = sid;
  e.code = code;
  e.text = std::move(target);
  e.note = why;
  host_.emit(std::move(e));
}

void Mux::on_open_ok(Stream& s, uint32_t window) {
  if (s.state != Stream::State::kOpening) return protocol_error("unexpected OPEN_OK");
  s.state = Stream::State::kOpen;
  s.send_credit = static_cast<int64_t>(window) - static_cast<int64_t>(s.bytes_out);
  s.epoch_start = now_;
  if (!s.udp) {
    // The listener's "accepted" goes to the local client before any of the peer's bytes.
    if (s.reply) s.local_first = s.reply->ok;
    flush_local(s);
    return make_ready(s);
  }
  // Datagrams held while the stream was opening go out now.
  for (Buf& b : s.pending) {
    s.bytes_out += b.size();
    host_.send_frame(tws2::kDatagram, s.id, b.data.get() + b.off, b.size());
  }
  s.pending.clear();
  s.pending_bytes = 0;
}

void Mux::on_fin(Stream& s) {
  if (s.fin_recv) return protocol_error("second FIN");
  if (s.state == Stream::State::kOpening) return protocol_error("FIN before OPEN_OK");
  s.fin_recv = true;
  if (s.state != Stream::State::kOpen) return;
  if (s.udp) return finish(s, "fin", false);  // udp has no half-close
  maybe_shutdown(s);
}

void Mux::on_reset(Stream& s, uint16_t code, const uint8_t* reason, size_t n) {
  const std::string name = code < 10 && code > 0 ? kResetNames[code] : ("code " + std::to_string(code));
  const std::string why(reinterpret_cast<const char*>(reason), n);
  // As the js engine words it: a reason that starts with the code's name
  // ("connect failed: ECONNREFUSED") does not say it twice.
  std::string how = "peer reset: ";
  if (why.empty() || why == name) how += name;
  else if (why.rfind(name + ": ", 0) == 0) how += why;
  else how += name + " (" + why + ")";
  if (s.state == Stream::State::kOpening && s.reply) s.answer = &s.reply->pick(code, why);
  finish(s, how, true);
}

void Mux::on_datagram(Stream& s, const uint8_t* p, size_t n) {
  if (!s.udp) return protocol_error("DATAGRAM on a tcp stream");
  if (s.state == Stream::State::kOpening) return protocol_error("DATAGRAM before OPEN_OK");
  s.last_active = now_;
  s.bytes_in += n;
  if (s.state == Stream::State::kAccepting) return hold_datagram(s, p, n);  // until accepted
  host_.emit_datagram(s.id, p, n);
}

// Only the first GOAWAY changes anything (and is reported): repeats are ignored.
void Mux::on_goaway() {
  if (peer_draining_) return;
  peer_draining_ = true;
  emit_simple(Event::kGoaway);
  if (streams_.empty()) emit_simple(Event::kIdle);
}

// LISTEN goes to a server, its answers to a client; the other way round is a
// protocol error. JavaScript decodes the body (its layout is checked already).
void Mux::on_control(uint8_t type, const uint8_t* body, size_t n) {
  if ((type == tws2::kListen) != o_.server) return protocol_error("LISTEN frame sent the wrong way");
  Event e{Event::kControl};
  e.session = session_;
  e.code = type;
  e.text.assign(reinterpret_cast<const char*>(body), n);
  host_.emit(std::move(e));
}

// ---- commands ----

void Mux::send_control(uint8_t type, const uint8_t* body, size_t n) {
  if (!tws2::control_type(type) || n > tws2::kMaxSmallBody || !host_.can_send()) return;
  host_.send_frame(type, 0, body, n);
}

const char* Mux::cannot_open(uint32_t sid, bool udp) const {
  const bool full = !udp && (credit_.process_full() || credit_.session_full());
  if (!host_.can_send() || peer_draining_ || streams_.count(sid) || full) {
    return full ? "refused: memory budget reached" : "session unavailable";
  }
  return nullptr;
}

Stream& Mux::open(uint32_t sid, std::string target, bool udp, PortPtr port, std::string initial,
                  std::unique_ptr<const Reply> reply) {
  auto fresh = std::make_unique<Stream>(sid, std::move(target), Stream::State::kOpening, tws2::kEarlyDataLimit,
                                        udp ? o_.initial_window : credit_.fresh_window());
  fresh->udp = udp;  // before add_stream: a udp stream holds no credit
  Stream* s = add_stream(std::move(fresh));
  s->port = std::move(port);
  s->last_active = now_;
  send_open(*s);
  if (!udp) {
    s->initial = std::move(initial);
    s->reply = std::move(reply);
    connected(*s);
    make_ready(*s);
  }
  return *s;
}

Stream* Mux::find_accepting(uint32_t sid) {
  Stream* s = find(sid);
  return s && s->state == Stream::State::kAccepting ? s : nullptr;
}

void Mux::accept(Stream& s, PortPtr port, std::string initial) {
  mark_open(s);
  if (port) s.port = std::move(port);
  s.initial = std::move(initial);
  connected(s);
}

void Mux::start(Stream& s) {
  if (s.done) return;
  flush_local(s);  // early data
  make_ready(s);
}

void Mux::accept_datagrams(Stream& s) {
  mark_open(s);
  s.last_active = now_;
  while (!s.pending.empty()) {
    host_.emit_datagram(s.id, s.pending.front().data.get(), s.pending.front().size());
    s.pending.pop_front();
  }
  s.pending_bytes = 0;
  if (s.fin_recv) finish(s, "fin", false);
}

void Mux::reject(uint32_t sid, uint16_t code, const std::string& reason) {
  Stream* s = find_accepting(sid);
  if (!s) return;
  send_reset(sid, code, reason);
  finish(*s, "refused: " + reason, false);
}

void Mux::close_stream(uint32_t sid, uint16_t code) {
  Stream* s = find(sid);
  if (!s || s->done) return;
  send_reset(sid, code, code < 10 && code > 0 ? kResetNames[code] : "closed");
  finish(*s, "closed locally", true);
}

// Like UDP, a datagram is dropped (and counted) rather than queued when the
// link is full; a few are held while the stream is opening.
void Mux::send_datagram(uint32_t sid, const uint8_t* p, size_t n) {
  Stream* s = find(sid);
  if (!s || !s->udp) return;
  s->last_active = now_;
  if (s->state == Stream::State::kOpening) return hold_datagram(*s, p, n);
  if (s->state != Stream::State::kOpen || host_.send_backlog() >= kSendHighWater) return host_.datagram_dropped();
  s->bytes_out += n;
  host_.send_frame(tws2::kDatagram, sid, p, n);
}

bool Mux::goaway(uint16_t code, const std::string& reason) {
  uint8_t body[2 + tws2::kMaxReason];
  host_.send_frame(tws2::kGoaway, 0, body, coded_body(body, code, reason));
  // Datagrams have no end a drain could wait for: udp streams end now
  // (RESET 9, after the GOAWAY, so the peer opens no new one here). Before
  // draining_ is set, so the last of them ending does not close the session:
  // the caller does, when nothing is left.
  std::vector<Stream*> udp;
  for (auto& kv : streams_) {
    if (kv.second->udp) udp.push_back(kv.second.get());
  }
  for (Stream* s : udp) {
    send_reset(s->id, 9, reason);
    finish(*s, "going away", false);
  }
  draining_ = true;
  return streams_.empty();
}

void Mux::reset_all(const std::string& why) {
  std::vector<Stream*> all;
  all.reserve(streams_.size());
  for (auto& kv : streams_) all.push_back(kv.second.get());
  for (Stream* s : all) finish(*s, why, true);
}

void Mux::tick() {
  std::vector<Stream*> idle;
  for (auto& kv : streams_) {
    Stream* s = kv.second.get();
    if (s->state != Stream::State::kOpen) continue;
    const double quiet = now_ - s->last_active;
    if (s->udp ? quiet > o_.udp_timeout_ms : o_.idle_timeout_ms > 0 && quiet > o_.idle_timeout_ms) idle.push_back(s);
  }
  for (Stream* s : idle) {
    send_reset(s->id, 7, s->udp ? "udp idle" : "idle");
    finish(*s, "idle", !s->udp);
  }
}

// ---- the local sockets ----

void Mux::local_readable(Stream& s) {
  s.readable = true;
  make_ready(s);
}

void Mux::local_writable(Stream& s) {
  s.writable = true;
  flush_local(s);
}

void Mux::local_error(Stream& s, int err) {
  if (s.done) return;
  send_reset(s.id, 6, "local socket error");
  finish(s, "local error: " + errno_name(err), true);
}

// ---- frames and lifecycle ----

// The acceptor's side: OPEN_OK out, the full window granted (sized by the budgets now, not at OPEN).
void Mux::mark_open(Stream& s) {
  s.state = Stream::State::kOpen;
  s.recv_window = s.udp ? o_.initial_window : credit_.fresh_window();
  set_granted(s, s.recv_window);
  s.epoch_start = now_;
  uint8_t body[4];
  tws2::write_u32(body, s.recv_window);
  host_.send_frame(tws2::kOpenOk, s.id, body, 4);
}

// A local socket that is connected: both directions are tried at once
// (edge-triggered: data may already be waiting; would-block says to wait).
void Mux::connected(Stream& s) {
  s.last_active = now_;
  s.writable = true;
  s.readable = true;
}

void Mux::send_open(const Stream& s) {
  std::string body(5, '\0');
  tws2::write_u32(reinterpret_cast<uint8_t*>(&body[0]), s.recv_window);
  body[4] = s.udp ? 2 : 1;
  body += s.target;
  host_.send_frame(tws2::kOpen, s.id, reinterpret_cast<const uint8_t*>(body.data()), body.size());
}

void Mux::send_reset(uint32_t sid, uint16_t code, const std::string& reason) {
  uint8_t body[2 + tws2::kMaxReason];
  host_.send_frame(tws2::kReset, sid, body, coded_body(body, code, reason));
}

void Mux::remember_closed(uint32_t sid) {
  recent_closed_.push_back(sid);
  recent_closed_set_.insert(sid);
  if (recent_closed_.size() > kRecentClosed) {
    recent_closed_set_.erase(recent_closed_.front());
    recent_closed_.pop_front();
  }
}

void Mux::emit_closed(uint32_t sid, uint64_t in, uint64_t out, const std::string& how) {
  host_.emit(stream_closed(session_, sid, how, in, out));
}

void Mux::emit_simple(Event::Kind k) {
  Event e{k};
  e.session = session_;
  host_.emit(std::move(e));
}

void Mux::finish(Stream& s, const std::string& how, bool abortive) {
  if (s.done) return;
  s.done = true;
  s.ready_hook.unlink();  // nothing may point at it once it is retired
  if (!s.udp) credit_.add(-static_cast<int64_t>(s.recv_granted - s.bytes_in));
  // An opened stream that ends unanswered tells its local client why (Reply), and closes with a FIN.
  if (s.reply && s.state == Stream::State::kOpening && s.port) {
    answer_refusal(s, s.answer ? *s.answer : s.reply->otherwise);
    abortive = false;
  }
  local_.local_close(s, abortive);
  emit_closed(s.id, s.bytes_in, s.bytes_out, how);
  remember_closed(s.id);
  auto it = streams_.find(s.id);
  if (it != streams_.end()) {
    host_.retire(std::move(it->second));
    streams_.erase(it);
  }
  if (!streams_.empty()) return;
  if (draining_ && host_.drained()) return;
  if (peer_draining_) emit_simple(Event::kIdle);
}

}  // namespace tws::mux
