// One WebSocket session (see ws_session.h).
#include "ws_session.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "loop.h"
#include "sockets.h"
#include "stream_socket.h"

namespace tws {

std::atomic<int64_t> g_process_credit{0};

WsSession::WsSession(Loop& loop, uint32_t id, UniqueFd fd, const SessionOptions& o, std::unique_ptr<Wire> wire)
    : loop_(loop), id_(id), fd_(std::move(fd)), wire_(wire ? std::move(wire) : std::make_unique<PlainWire>(fd_.get())), o_(o),
      parser_(o.server ? ws::Role::kServer : ws::Role::kClient, tws2::kMaxMessage),
      reader_(new tws2::MessageReader<WsSession>(*this)), locals_(loop, *this),
      mux_(*this, locals_, id, o, g_process_credit), liveness_(o.timeout_ms, now_ms()) {}

WsSession::~WsSession() = default;

double WsSession::sync_time() {
  const double now = now_ms();
  mux_.set_time(now);
  return now;
}

const uint8_t* WsSession::mask_key(uint8_t* key) {
  if (o_.server) return nullptr;
  const uint32_t k = loop_.random().u32();
  std::memcpy(key, &k, 4);
  return key;
}

bool WsSession::start(const std::string& head, const std::string& preamble, bool await_upgrade) {
  sync_time();
  set_nodelay_nonblock(fd_.get());
  if (await_upgrade) {
    upgrade_.begin(now_ms() + o_.timeout_ms);
  }
  // The 101 (or the client's request) goes out first and whole: no pong may
  // overtake it, and a protocol error must not drop it.
  if (!preamble.empty()) out_.push_preamble(copy_buf(reinterpret_cast<const uint8_t*>(preamble.data()), preamble.size()));
  if (!loop_.watch(fd_.get(), this)) return false;
  if (!head.empty()) {
    std::string copy = head;  // the parser unmasks in place
    feed(reinterpret_cast<uint8_t*>(copy.data()), copy.size());
  }
  flush();
  return true;
}

// ---- commands ----

void WsSession::open_stream(uint32_t sid, UniqueFd fd, std::string target, std::string initial,
                            std::unique_ptr<const mux::Reply> reply, UniqueFd out) {
  sync_time();
  // (cannot_open() covers a closing or dead session too.)
  if (const char* why = mux_.cannot_open(sid, false)) {
    refuse_unopened(std::move(fd), reply.get());
    return emit(stream_closed(id_, sid, why));
  }
  mux::PortPtr port = out ? locals_.adopt_split(sid, std::move(fd), std::move(out)) : locals_.adopt(sid, std::move(fd));
  mux::Stream& s = mux_.open(sid, std::move(target), false, std::move(port), std::move(initial), std::move(reply));
  watch(s);
  flush();
}

void WsSession::open_datagrams(uint32_t sid, std::string target) {
  sync_time();
  if (const char* why = mux_.cannot_open(sid, true)) return emit(stream_closed(id_, sid, why));
  mux_.open(sid, std::move(target), true, nullptr, std::string());
  flush();
}

void WsSession::accept_stream(uint32_t sid, UniqueFd fd, std::string initial) {
  sync_time();
  mux::Stream* s = mux_.find_accepting(sid);
  // Cancelled meanwhile, or already being dialled (a second answer): fd closes.
  if (!s || s->udp || s->port) return;
  mux_.accept(*s, locals_.adopt(sid, std::move(fd)), std::move(initial));
  // Watched before anything is written to it: a socket epoll cannot watch
  // gets no early data, only the RESET.
  if (locals_.watch(*s)) mux_.start(*s);
  else mux_.local_error(*s, errno);
  flush();
}

void WsSession::accept_datagrams(uint32_t sid) {
  sync_time();
  mux::Stream* s = mux_.find_accepting(sid);
  if (!s || !s->udp) return;
  mux_.accept_datagrams(*s);
  flush();
}

void WsSession::send_datagram(uint32_t sid, const std::string& payload) {
  sync_time();
  mux_.send_datagram(sid, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  flush();
}

void WsSession::close_stream(uint32_t sid, uint16_t code) {
  sync_time();
  mux_.close_stream(sid, code);
  flush();
}

void WsSession::send_control(uint8_t type, const std::string& body) {
  if (closing_ || dead_ || upgrade_.pending()) return;
  sync_time();
  mux_.send_control(type, reinterpret_cast<const uint8_t*>(body.data()), body.size());
  flush();
}

void WsSession::reject(uint32_t sid, uint16_t code, const std::string& reason) {
  sync_time();
  mux_.reject(sid, code, reason);
  flush();
}

// Connects the stream's target itself (address: an IP literal JavaScript
// has already approved), then opens the stream as accept_stream does, or
// RESETs it as JavaScript would: 2 (connect failed) or 3 (timed out).
void WsSession::dial(uint32_t sid, const std::string& address, uint16_t port, uint32_t timeout_ms) {
  const double now = sync_time();
  mux::Stream* s = mux_.find_accepting(sid);
  if (!s || s->udp || s->port) return;
  std::string why;
  if (!locals_.dial(*s, address, port, timeout_ms, now, &why)) reject(sid, 2, why);
}

void WsSession::grant_ahead(uint32_t slots, uint32_t timeout_ms) {
  ahead_slots_ += slots;
  ahead_timeout_ms_ = timeout_ms;
}

void WsSession::revoke_ahead() {
  Event e(Event::kAheadReturned);
  e.session = id_;
  e.code = ahead_slots_;
  ahead_slots_ = 0;
  emit(std::move(e));
}

bool WsSession::take_ahead(Event& e) {
  if (ahead_slots_ == 0 || e.code != 1 || !o_.server) return false;
  AheadTarget t;
  if (!parse_ahead_target(e.text, &t)) return false;
  ahead_slots_--;
  e.kind = Event::kOpenedAhead;
  ahead_dials_.emplace_back(e.stream, std::move(t));
  return true;
}

// After the parser returned: dialling inside the mux's OPEN (a failure
// answers at once) would re-enter it mid-frame.
void WsSession::dial_ahead() {
  std::vector<std::pair<uint32_t, AheadTarget>> dials;
  dials.swap(ahead_dials_);
  for (const auto& d : dials) dial(d.first, d.second.host, d.second.port, ahead_timeout_ms_);
}

void WsSession::goaway(uint16_t code, const std::string& reason) {
  if (mux_.draining() || closing_ || dead_ || upgrade_.pending()) return;
  sync_time();
  if (mux_.goaway(code, reason)) send_close(1001, reason);
  flush();
}

void WsSession::close(uint16_t code, const std::string& reason, const std::string& how) {
  if (closing_ || dead_) return;
  sync_time();
  close_code_ = code;
  close_reason_ = reason;
  if (upgrade_.pending()) return teardown();  // no WebSocket yet: nothing to say goodbye on
  // The close frame first: ending the streams may end a drain, whose own
  // close (1001) must not take this one's place.
  send_close(code, reason);
  mux_.reset_all(how);
  flush();
}

// JavaScript accepted the upgrade response: the WebSocket starts.
void WsSession::upgraded() {
  std::string rest;  // the first frames, read along with the head
  if (dead_ || !upgrade_.accept(&rest)) return;
  liveness_.restart(sync_time());
  if (!rest.empty()) feed(reinterpret_cast<uint8_t*>(rest.data()), rest.size());
  readable_ = true;  // a TLS wire may hold more already read: epoll would not say so again
  loop_.mark_dirty(this);
}

// ---- the loop ----

void WsSession::on_events(uint32_t events) {
  if (dead_) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) readable_ = true;
  wire_->saw(events);
  if (events & EPOLLOUT) writable_ = true;
  if (wire_->crosswise()) readable_ = writable_ = true;
  loop_.mark_dirty(this);
}

void WsSession::stream_event(uint32_t sid, uint32_t events) {
  if (dead_) return;
  mux::Stream* s = mux_.find(sid);
  if (!s || !s->port) return;  // it ended earlier in this turn
  sync_time();
  StreamSocket& sock = *LocalSockets::of(*s);
  if (sock.dialing) {
    // The target the engine is connecting answered, or failed.
    const int err = locals_.dial_event(sock, events);
    if (err > 0) reject(sid, err == ETIMEDOUT ? 3 : 2, "connect failed: " + errno_name(err));
    else if (err == 0) {
      mux_.accept(*s, nullptr, std::string());  // the dialled socket, watched already
      mux_.start(*s);
    }
    flush();
    loop_.mark_dirty(this);
    return;
  }
  if (events & EPOLLERR) {
    mux_.local_error(*s, sock.error());
    flush();
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLPRI)) mux_.local_readable(*s);
  if (events & EPOLLOUT) mux_.local_writable(*s);
  loop_.mark_dirty(this);
}

void WsSession::work() {
  if (dead_) return;
  sync_time();
  // Two reasons not to read, kept apart: the peer does not read what we owe
  // it (gated_since_: what it sends makes us answer, and it is closed if
  // that lasts), and JavaScript is behind on events (the loop resumes every
  // session once it caught up: resume_reading()).
  if (out_.bytes() < kReadGate) gated_since_ = 0;
  else if (gated_since_ == 0 && readable_) gated_since_ = now_ms();
  if (readable_ && !upgrade_.held() && gated_since_ == 0 && !loop_.events().backlogged()) {
    read_some();  // one read (up to the loop's read buffer) a turn
    if (readable_ && !dead_) loop_.mark_dirty(this);  // more to read next turn
  }
  if (!dead_) mux_.pump();
  if (!dead_) flush();
}

void WsSession::resume_reading() {
  if (!dead_ && readable_) loop_.mark_dirty(this);
}

void WsSession::tick(double now) {
  if (dead_) return;
  mux_.set_time(now);
  if (closing_) {
    if (now >= close_deadline_) teardown();
    return;
  }
  if (upgrade_.pending()) {
    if (upgrade_.expired(now)) {
      const char* what = wire_->handshaking() ? "no TLS handshake within " : "no answer to the upgrade within ";
      fail_upgrade(1006, what + std::to_string(o_.timeout_ms) + " ms");
    }
    return;
  }
  // The wire held reading back (TLS answers the peer does not read) as long: the same.
  const bool held = held_since_ != 0 && wire_->reading_held();
  if ((gated_since_ != 0 && now - gated_since_ > o_.timeout_ms) || (held && now - held_since_ > o_.timeout_ms)) {
    // It sends and never reads: it gets a close frame (which it will not
    // read either) and the connection goes after the close grace.
    return close(1008, "peer is not reading", "peer is not reading");
  }
  const double quiet = liveness_.silent_for(now);
  // While we hold off reading, its silence is ours, not the peer's.
  if (quiet > o_.timeout_ms && gated_since_ == 0 && !held && !loop_.events().backlogged()) {
    close_code_ = 1006;
    close_reason_ = "peer silent for " + std::to_string(static_cast<int64_t>(quiet)) + " ms";
    mux_.reset_all("session timed out");
    teardown();
    return;
  }
  mux_.tick();
  // Targets the engine is connecting that did not answer in time.
  for (const auto& late : locals_.expired_dials(mux_, now)) {
    reject(late.first, 3, "connect timed out after " + std::to_string(late.second) + " ms");
  }
  if (liveness_.ping_due(now, link_idle(now), mux_.last_data())) ping(now);
  flush();
}

// ---- the peer's frames ----

void WsSession::on_control(uint8_t op, uint8_t* p, size_t n) {
  const double now = now_ms();
  liveness_.heard(now);
  if (op == ws::kPing) {
    queue_control(ws::kPong, p, n);
  } else if (op == ws::kPong) {
    const double rtt = liveness_.ponged(now, p, n);
    if (rtt >= 0) {
      mux_.set_base_rtt(liveness_.base_rtt());
      Event e(Event::kRtt);  // a few per second at most: only idle-link pings are sampled
      e.session = id_;
      e.code = static_cast<uint32_t>(rtt * 1000);
      emit(std::move(e));
    }
  } else if (op == ws::kClose) {
    close_received_ = true;
    const uint16_t code = n >= 2 ? static_cast<uint16_t>((p[0] << 8) | p[1]) : 1005;
    if (!closing_) {
      close_code_ = code;
      close_reason_ = n > 2 ? std::string(reinterpret_cast<char*>(p + 2), n - 2) : "";
      send_close(code, close_reason_);  // the parser has checked it; an empty close (1005) is answered empty, as ws does
    }
    mux_.reset_all("peer closed the session");
    if (out_empty()) teardown();
  }
}

void WsSession::read_some() {
  uint8_t* buf = loop_.read_buffer();
  const ssize_t n = wire_->recv(buf, Loop::kReadBuffer);
  const int err = errno;
  if (n > 0) {
    held_since_ = 0;
    if (wire_->drained(static_cast<size_t>(n), Loop::kReadBuffer)) readable_ = false;  // epoll speaks when more comes
    liveness_.heard(sync_time());
    if (upgrade_.reading()) return read_upgrade_head(buf, static_cast<size_t>(n));
    feed(buf, static_cast<size_t>(n));
    return;
  }
  if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
    readable_ = false;
    // Records with no payload for us (a flood of TLS KeyUpdates) are the peer speaking, not silence.
    if (wire_->heard_below()) liveness_.heard(sync_time());
    if (!wire_->reading_held()) held_since_ = 0;
    else if (held_since_ == 0) held_since_ = now_ms();
    return;
  }
  if (n < 0 && err == EINTR) return;
  // EOF or error without a close frame. (What JavaScript prints for 1006 with no reason: "connection lost".)
  readable_ = false;
  // A plain port (or a server that dislikes our hello) ends a wss:// client's handshake by closing: say where it ended.
  if (wire_->handshaking() && wire_->error_code() == 1006) return lost(1006, "connection closed during the TLS handshake");
  if (n == 0) return lost(1006, "");
  lost(wire_->error_code(), wire_->error_text(err));
}

// Collects the upgrade response head; what follows it is kept for upgraded().
void WsSession::read_upgrade_head(const uint8_t* p, size_t n) {
  const ClientUpgrade::Read r = upgrade_.take(p, n);
  if (r == ClientUpgrade::Read::kTooLarge) return fail_upgrade(1002, "upgrade response head too large");
  if (r == ClientUpgrade::Read::kMore) return;
  Event e(Event::kUpgradeHead);
  e.session = id_;
  e.text = upgrade_.head();
  emit(std::move(e));
}

void WsSession::fail_upgrade(uint16_t code, const std::string& reason) {
  close_code_ = code;
  close_reason_ = reason;
  teardown();
}

void WsSession::feed(uint8_t* p, size_t n) {
  if (error_ || dead_) return;  // after a protocol error we only wait for the close
  ws::ParseError err;
  parser_.feed(p, n, *reader_, &err);
  if (!err && reader_->error()) err = reader_->error();
  if (!err && mux_.error()) err = ws::ParseError{1002, mux_.error()};
  if (!err) {
    if (!ahead_dials_.empty()) dial_ahead();
    return;
  }
  ahead_dials_.clear();  // the streams end below, undialled, as JavaScript's answer would come too late
  error_ = true;
  close_code_ = err.close_code;
  close_reason_ = err.reason;
  // Queued frames go, the close frame comes, and only then the streams end
  // (a drain's 1001 would otherwise take the close frame's place).
  out_.drop_unsent();
  send_close(err.close_code, err.reason);
  mux_.reset_all("protocol error");
}

// ---- what goes to the peer ----

void WsSession::send_frame(uint8_t type, uint32_t stream, const uint8_t* body, size_t n) {
  if (closing_ || dead_) return;
  std::string payload(tws2::kHeaderLen + n, '\0');
  tws2::write_tws2_header(reinterpret_cast<uint8_t*>(&payload[0]), type, stream);
  if (n) std::memcpy(&payload[tws2::kHeaderLen], body, n);
  uint8_t key[4];
  out_.push(make_ws_frame(ws::kBinary, reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), mask_key(key)));
}

void WsSession::send_data(uint32_t stream, Buf b, size_t n) {
  uint8_t key[4];
  seal_data_frame(b, stream, n, mask_key(key));
  out_.push(std::move(b));
}

// Pings and pongs go ahead of queued messages (OutQueue).
void WsSession::queue_control(uint8_t op, const uint8_t* p, size_t n) {
  if (closing_ || dead_) return;
  uint8_t key[4];
  out_.push_control(make_ws_frame(op, p, n, mask_key(key)));
}

void WsSession::send_close(uint16_t code, const std::string& reason) {
  if (closing_ || dead_) return;
  if (close_code_ == 0) {
    close_code_ = code;
    close_reason_ = reason;
  }
  uint8_t body[2 + tws2::kMaxReason];
  // 1005 means "no status": it is never sent, the frame goes out empty.
  const size_t n = code == 1005 ? 0 : mux::coded_body(body, code, reason);
  // The close frame follows what is already queued (DATA and all).
  uint8_t key[4];
  out_.push(make_ws_frame(ws::kClose, body, n, mask_key(key)));
  closing_ = true;
  close_deadline_ = now_ms() + kCloseGraceMs;
  loop_.mark_dirty(this);
}

// Writes queued frames, many buffers per write, in OutQueue's order.
void WsSession::flush() {
  while (!dead_ && writable_ && !out_empty()) {
    iovec iov[64];
    const int cnt = out_.next(iov, 64);
    const ssize_t w = wire_->sendv(iov, cnt);  // cnt is 0 when only the wire holds bytes
    if (w < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        writable_ = false;
        break;
      }
      if (err == EINTR) continue;
      return lost(wire_->error_code(), wire_->error_text(err));
    }
    out_.advance(static_cast<size_t>(w));
  }
  if (closing_ && out_empty() && close_received_) teardown();
  if (!dead_ && out_.message_bytes() < mux::Mux::kSendHighWater && mux_.has_ready()) loop_.mark_dirty(this);
  if (!dead_ && gated_since_ != 0 && out_.bytes() < kReadGate) {
    gated_since_ = 0;
    // Read again; unless JavaScript is behind, when resume_reading() will.
    if (readable_ && !loop_.events().backlogged()) loop_.mark_dirty(this);
  }
}

// The link is idle (no DATA for a while, nothing queued): a ping's round trip is a clean RTT sample.
bool WsSession::link_idle(double now) const { return now - mux_.last_data() >= Liveness::kQuietMs && out_.empty(); }

void WsSession::ping(double now) {
  const uint64_t token = loop_.random().u64();
  liveness_.pinged(now, token, link_idle(now), mux_.last_data());
  queue_control(ws::kPing, reinterpret_cast<const uint8_t*>(&token), 8);
}

void WsSession::lost(uint16_t code, const std::string& reason) {
  if (close_code_ == 0) {
    close_code_ = code;
    close_reason_ = reason;
  }
  mux_.reset_all("session lost");
  teardown();
}

// Closes the connection and reports the session closed, once.
void WsSession::teardown() {
  if (dead_) return;
  mux_.reset_all("session lost");
  dead_ = true;
  loop_.reap_soon();
  loop_.unwatch(fd_.get());
  fd_.reset();
  Event e{Event::kSessionClosed};
  e.session = id_;
  e.code = close_code_ ? close_code_ : 1006;
  e.bytes_in = mux_.bytes_in();
  e.bytes_out = mux_.bytes_out();
  e.text = close_reason_;
  emit(std::move(e));
}

// ---- mux::MuxHost ----

// A stream whose socket epoll cannot watch fails (RESET 6).
void WsSession::watch(mux::Stream& s) {
  if (!s.done && !locals_.watch(s)) mux_.local_error(s, errno);
}

void WsSession::emit(Event e) {
  if (e.kind == Event::kOpenRequest) take_ahead(e);
  loop_.events().emit(std::move(e));
}

void WsSession::emit_datagram(uint32_t stream, const uint8_t* p, size_t n) { loop_.events().emit_datagram(id_, stream, p, n); }

void WsSession::datagram_dropped() { loop_.events().datagram_dropped(); }

void WsSession::retire(std::unique_ptr<mux::Stream> s) { loop_.retire(std::move(s)); }

bool WsSession::drained() {
  if (closing_ || dead_) return false;
  send_close(1001, "drained");
  return true;
}

void WsSession::want_pump() { loop_.mark_dirty(this); }

}  // namespace tws
