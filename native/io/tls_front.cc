#include "tls_front.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "loop.h"
#include "sockets.h"
#include "ws_session.h"

namespace tws {

namespace {
bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }
}  // namespace

Front::Front(Loop& loop, uint32_t id, UniqueFd tcp, UniqueFd pair, std::unique_ptr<Wire> wire)
    : loop_(loop), id_(id), tcp_(std::move(tcp)), pair_(std::move(pair)), wire_(std::move(wire)) {
  loop_.fronts_alive().fetch_add(1, std::memory_order_relaxed);
}

Front::~Front() { loop_.fronts_alive().fetch_sub(1, std::memory_order_relaxed); }

bool Front::start() {
  set_nodelay_nonblock(tcp_.get());
  if (!loop_.watch(tcp_.get(), &tcp_end_) || !loop_.watch(pair_.get(), &pair_end_)) return false;
  relay();
  return true;
}

// Reads decrypted bytes for JavaScript; true on progress.
bool Front::pull_tls(uint8_t* buf) {
  const ssize_t n = wire_->recv(buf, Loop::kReadBuffer);
  if (n > 0) {
    to_js_.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    return true;
  }
  if (n == 0 || !would_block(errno)) {
    tls_done_ = true;  // the client left, or TLS failed (a handshake error, say)
    if (n < 0 && wire_->error_code() == 1015) {
      // For the server's debug log: a client that does not trust us, a scanner, an old TLS.
      Event e(Event::kTlsFailed);
      e.session = id_;
      e.text = wire_->error_text(errno);
      loop_.events().emit(std::move(e));
    }
  }
  return false;
}

// Reads what JavaScript answered, for the client; true on progress.
bool Front::pull_js(uint8_t* buf) {
  const ssize_t n = ::recv(pair_.get(), buf, Loop::kReadBuffer, 0);
  if (n > 0) {
    to_tls_.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    return true;
  }
  if (n == 0 || !would_block(errno)) js_done_ = true;  // JavaScript answered and closed (a 404, say), or dropped it
  return false;
}

void Front::relay() {
  if (dead_) return;  // closed or handed over (wire_ gone) earlier in this epoll batch
  uint8_t* buf = loop_.read_buffer();
  for (bool progress = true; progress && !dead_;) {
    progress = false;
    if (to_js_.empty() && !tls_done_) progress |= pull_tls(buf);
    if (!to_js_.empty()) {
      const ssize_t w = ::send(pair_.get(), to_js_.data(), to_js_.size(), MSG_NOSIGNAL);
      if (w > 0) {
        to_js_.erase(0, static_cast<size_t>(w));
        progress = true;
      } else if (w < 0 && !would_block(errno)) {
        return close();
      }
    }
    if (to_tls_.empty() && !js_done_) progress |= pull_js(buf);
    if (!to_tls_.empty() || wire_->holding()) {
      iovec iov{const_cast<char*>(to_tls_.data()), to_tls_.size()};
      const ssize_t w = wire_->sendv(&iov, to_tls_.empty() ? 0 : 1);
      if (w > 0) {
        to_tls_.erase(0, static_cast<size_t>(w));
        progress = true;
      } else if (w < 0 && !would_block(errno)) {
        return close();
      }
    }
  }
  // Either side gone: once what it said has reached the other, close both.
  if (tls_done_ && to_js_.empty()) return close();
  if (js_done_ && to_tls_.empty() && !wire_->holding()) return close();
}

Front::Handoff Front::hand_over(UniqueFd js, std::string* head, std::string* preamble) {
  set_nonblock(js.get());
  // Decrypted bytes, in order: what JavaScript read (head), what it left in
  // its end of the pair, what we had not yet passed on.
  uint8_t* buf = loop_.read_buffer();
  for (ssize_t n; (n = ::recv(js.get(), buf, Loop::kReadBuffer, 0)) > 0;) head->append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  *head += to_js_;
  // Anything JavaScript wrote that has not gone out precedes the 101.
  for (ssize_t n; (n = ::recv(pair_.get(), buf, Loop::kReadBuffer, 0)) > 0;) to_tls_.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  preamble->insert(0, to_tls_);
  loop_.unwatch(tcp_.get());
  loop_.unwatch(pair_.get());
  pair_.reset();
  dead_ = true;
  loop_.reap_soon();
  return Handoff{std::move(tcp_), std::move(wire_)};
}

void Front::close() {
  if (dead_) return;
  dead_ = true;
  loop_.reap_soon();
  loop_.unwatch(tcp_.get());
  loop_.unwatch(pair_.get());
  tcp_.reset();
  pair_.reset();
}

void Front::tick(double now) {
  if (dead_ || !js_done_) return;
  if (js_done_at_ == 0) js_done_at_ = now;
  else if (now - js_done_at_ > WsSession::kCloseGraceMs * 5) close();
}

}  // namespace tws
