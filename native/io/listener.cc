#include "listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "local_sockets.h"
#include "loop.h"
#include "sockets.h"  // set_nonblock
#include "ws_session.h"

namespace tws {

namespace {

// "ip:port" ("[v6]:port") of an accepted peer, for log lines.
std::string peer_text(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "?";
}

UniqueFd open_spare() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

}  // namespace

Listener::Listener(Loop& loop, uint32_t id, UniqueFd fd, std::string target, uint32_t timeout_ms)
    : loop_(loop), id_(id), fd_(std::move(fd)), target_(std::move(target)), timeout_ms_(timeout_ms) {}

Listener::~Listener() { close(); }

bool Listener::start() {
  set_nonblock(fd_.get());
  spare_ = open_spare();
  if (!loop_.watch(fd_.get(), this)) return false;
  ask(0);
  return true;
}

void Listener::grant(uint32_t session, uint32_t first, uint32_t count) {
  session_ = session;
  next_ = first;
  left_ = count;
  asked_low_ = asked_empty_ = false;
  accept_ready();
}

void Listener::close() {
  if (!fd_) return;
  loop_.unwatch(fd_.get());
  fd_.reset();
  loop_.reap_soon();
  waiting_.clear();
}

void Listener::on_events(uint32_t) { accept_ready(); }

WsSession* Listener::session() {
  if (left_ == 0) {
    if (!asked_empty_) ask(0);
    return nullptr;
  }
  WsSession* s = loop_.find_session(session_);
  if (s && s->takes_new_streams()) return s;
  // Gone or going (closing, draining) before JavaScript knew: the grant is
  // dropped, and JavaScript is told, lest it grant the same session again at once.
  left_ = 0;
  ask(0, true);
  return nullptr;
}

void Listener::tick(double now) {
  if (!fd_) return;
  // Oldest first: connections that waited out the timeout are closed, as JavaScript closes those it holds (a FIN).
  const bool was_full = waiting_.size() >= kMaxWaiting;
  while (!waiting_.empty() && now - waiting_.front().since >= timeout_ms_) {
    report(0, waiting_.front().peer);
    waiting_.pop_front();
  }
  if (retry_at_ != 0 && now >= retry_at_) retry_at_ = 0;
  else if (!was_full || waiting_.size() >= kMaxWaiting) return;
  // Accepting stopped for want of room (or memory): no edge comes for what
  // is already in the backlog, so accept it now (to wait its turn, or time out).
  accept_ready();
}

// Edge-triggered: accepts until the backlog is empty or accept fails (or, with
// no session, until kMaxWaiting wait); a grant or retry calls this again.
void Listener::accept_ready() {
  while (fd_ && !waiting_.empty()) {
    WsSession* s = session();
    if (!s) break;
    Waiting w = std::move(waiting_.front());
    waiting_.pop_front();
    open(*s, std::move(w.fd), w.peer);
  }
  while (fd_ && retry_at_ == 0) {
    WsSession* s = waiting_.empty() ? session() : nullptr;
    if (!s && waiting_.size() >= kMaxWaiting) return;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    UniqueFd c(::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
      if (!failing_) report(static_cast<uint32_t>(err), std::string());
      failing_ = true;
      if ((err == EMFILE || err == ENFILE) && turn_one_away()) continue;
      // Out of memory (or without a spare fd): the connection stays in the backlog; try again shortly.
      retry_at_ = now_ms() + kRetryMs;
      return;
    }
    failing_ = false;
    // A spare that could not be reopened after the last shortage is taken back as soon as fds are free again.
    if (!spare_) spare_ = open_spare();
    if (s) open(*s, std::move(c), peer_text(peer));
    else waiting_.push_back({std::move(c), peer_text(peer), now_ms()});
  }
}

void Listener::open(WsSession& s, UniqueFd fd, const std::string& peer) {
  const uint32_t sid = next_;
  next_ += 2;
  left_--;
  Event e(Event::kLocalOpened);
  e.session = session_;
  e.stream = sid;
  e.code = id_;
  e.text = peer;
  loop_.events().emit(std::move(e));  // before open_stream, which may already report the stream closed
  s.open_stream(sid, std::move(fd), target_, std::string(), nullptr);
  if (left_ > 0 && left_ <= kLowIds && !asked_low_) ask(left_);
}

bool Listener::turn_one_away() {
  if (!spare_) return false;
  spare_.reset();
  UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  const bool took = static_cast<bool>(c);
  c.reset_abortive();
  spare_ = open_spare();
  return took;
}

void Listener::ask(uint32_t left, bool refused) {
  (left > 0 ? asked_low_ : asked_empty_) = true;
  Event e(Event::kListener);
  e.session = id_;
  e.bytes_in = left;
  e.stream = refused ? 2 : 0;
  loop_.events().emit(std::move(e));
}

// A connection that waited out the timeout (`peer`), or why accept failed (`err`).
void Listener::report(uint32_t err, const std::string& peer) {
  Event e(Event::kListener);
  e.session = id_;
  e.code = err;
  e.stream = peer.empty() ? 0 : 1;
  e.text = peer;
  loop_.events().emit(std::move(e));
}

}  // namespace tws
