// The Engine facade (engine.h): each command is posted to the I/O thread,
// which finds the session (or front) it is for and carries it out there.
#include "engine.h"

#include "listener.h"
#include "local_sockets.h"
#include "loop.h"
#include "tls_front.h"
#include "ws_session.h"

namespace tws {

namespace {

// Runs `f` on the I/O thread with the session, if it is still there. A
// command for a session that is gone is dropped whole (closing any fd it
// carries): that session has already reported its streams closed.
template <class F>
void post_to_session(Loop* loop, uint32_t session, F f) {
  loop->post([loop, session, f = std::move(f)]() mutable {
    if (WsSession* s = loop->find_session(session)) f(*s);
  }, session);
}

void emit_session_closed(Loop* loop, uint32_t session, const char* why) {
  Event e(Event::kSessionClosed);
  e.session = session;
  e.code = 1006;
  e.text = why;
  loop->events().emit(std::move(e));
}

}  // namespace

Engine::Engine(std::function<void()> notify) : loop_(new Loop(notify)), fronts_loop_(new Loop(notify)) {}
Engine::~Engine() {
  stop();
  if (stuck_) {
    // A thread still runs on them: freeing them would pull its memory from under it.
    (void)loop_.release();
    (void)fronts_loop_.release();
  }
}
bool Engine::start(std::string* error) { return loop_->start(error); }
void Engine::set_busy_poll(uint32_t us) { loop_->set_busy_poll(us); }

bool Engine::stop() {
  stopped_ = true;
  // Fronts first: a handoff it makes meanwhile is posted to a loop that still takes it (or closes it).
  const bool fronts = fronts_loop_->stop();
  const bool io = loop_->stop();
  stuck_ = stuck_ || !fronts || !io;
  return !stuck_;
}

std::vector<Event> Engine::take_events() {
  std::vector<Event> out = loop_->take_events();
  std::vector<Event> fronts = fronts_loop_->take_events();
  out.insert(out.end(), std::make_move_iterator(fronts.begin()), std::make_move_iterator(fronts.end()));
  return out;
}

EngineStats Engine::stats() const {
  EngineStats st;
  st.datagrams_dropped = loop_->events().datagrams_dropped();
  st.fronts = loop_->fronts_alive().load(std::memory_order_relaxed) + fronts_loop_->fronts_alive().load(std::memory_order_relaxed);
  return st;
}

Loop* Engine::front_loop() {
  // Stopped: no thread is started any more; what is posted to a stopped loop is closed at once.
  if (stopped_) return loop_.get();
  if (!front_loop_) {
    std::string error;
    front_loop_ = fronts_loop_->start(&error, "tws-tls") ? fronts_loop_.get() : loop_.get();
  }
  return front_loop_;
}

void Engine::adopt(uint32_t session, UniqueFd fd, std::string head, std::string preamble, SessionOptions options) {
  Loop* loop = loop_.get();
  loop->post([loop, session, fd = std::move(fd), head = std::move(head), preamble = std::move(preamble), options]() mutable {
    loop->install(std::make_unique<WsSession>(*loop, session, std::move(fd), options), head, preamble, false);
  });
}

void Engine::adopt_upgrading(uint32_t session, UniqueFd fd, std::unique_ptr<Wire> wire, std::string request, SessionOptions options) {
  Loop* loop = loop_.get();
  loop->post([loop, session, fd = std::move(fd), wire = std::move(wire), request = std::move(request), options]() mutable {
    loop->install(std::make_unique<WsSession>(*loop, session, std::move(fd), options, std::move(wire)), std::string(), request, true);
  });
}

void Engine::front_tls(uint32_t front, UniqueFd tcp_fd, UniqueFd pair_fd, std::unique_ptr<Wire> wire) {
  Loop* loop = front_loop();
  loop->post([loop, front, tcp = std::move(tcp_fd), pair = std::move(pair_fd), wire = std::move(wire)]() mutable {
    if (loop->fronts().count(front) != 0) return;  // an id in use (see Loop::install): the sockets close
    auto f = std::make_unique<Front>(*loop, front, std::move(tcp), std::move(pair), std::move(wire));
    if (!f->start()) f->close();
    loop->fronts()[front] = std::move(f);
  });
}

void Engine::adopt_front(uint32_t session, uint32_t front, UniqueFd js_fd, std::string head, std::string preamble, SessionOptions options) {
  Loop* from = front_loop();
  Loop* to = loop_.get();
  // Until the connection is there, the session's commands wait on `to` (posted before any of them).
  if (from != to) to->post([to, session] { to->expect(session); });
  from->post([from, to, session, front, js = std::move(js_fd), head = std::move(head), preamble = std::move(preamble), options]() mutable {
    auto it = from->fronts().find(front);
    Front::Handoff h;
    if (it != from->fronts().end() && !it->second->dead()) h = it->second->hand_over(std::move(js), &head, &preamble);
    // js (if not taken) closes with this command.
    auto install = [to, session, h = std::move(h), head = std::move(head), preamble = std::move(preamble), options]() mutable {
      if (!h.wire) emit_session_closed(to, session, "connection closed before the upgrade");
      else to->install(std::make_unique<WsSession>(*to, session, std::move(h.tcp), options, std::move(h.wire)), head, preamble, false);
      to->arrived(session);
    };
    if (from == to) install();
    else to->post(std::move(install));
  });
}

void Engine::upgraded(uint32_t session) {
  post_to_session(loop_.get(), session, [](WsSession& s) { s.upgraded(); });
}

void Engine::open_stream(uint32_t session, uint32_t stream, UniqueFd fd, std::string target, std::string initial,
                         std::unique_ptr<const mux::Reply> reply, UniqueFd out) {
  Loop* loop = loop_.get();
  loop->post([loop, session, stream, fd = std::move(fd), target = std::move(target), initial = std::move(initial),
              reply = std::move(reply), out = std::move(out)]() mutable {
    if (WsSession* s = loop->find_session(session)) {
      return s->open_stream(stream, std::move(fd), std::move(target), std::move(initial), std::move(reply), std::move(out));
    }
    // JavaScript counts on a closed event for every stream it opened.
    refuse_unopened(std::move(fd), reply.get());
    loop->events().emit(stream_closed(session, stream, "session closed"));
  }, session);
}

void Engine::accept_stream(uint32_t session, uint32_t stream, UniqueFd fd, std::string initial) {
  post_to_session(loop_.get(), session, [stream, fd = std::move(fd), initial = std::move(initial)](WsSession& s) mutable {
    s.accept_stream(stream, std::move(fd), std::move(initial));
  });
}

void Engine::dial_stream(uint32_t session, uint32_t stream, std::string address, uint16_t port, uint32_t timeout_ms) {
  post_to_session(loop_.get(), session, [stream, address = std::move(address), port, timeout_ms](WsSession& s) {
    s.dial(stream, address, port, timeout_ms);
  });
}

void Engine::reject_stream(uint32_t session, uint32_t stream, uint16_t code, std::string reason) {
  post_to_session(loop_.get(), session, [stream, code, reason = std::move(reason)](WsSession& s) { s.reject(stream, code, reason); });
}

void Engine::goaway(uint32_t session, uint16_t code, std::string reason) {
  post_to_session(loop_.get(), session, [code, reason = std::move(reason)](WsSession& s) { s.goaway(code, reason); });
}

void Engine::grant_ahead(uint32_t session, uint32_t slots, uint32_t timeout_ms) {
  post_to_session(loop_.get(), session, [slots, timeout_ms](WsSession& s) { s.grant_ahead(slots, timeout_ms); });
}

void Engine::revoke_ahead(uint32_t session) {
  post_to_session(loop_.get(), session, [](WsSession& s) { s.revoke_ahead(); });
}

void Engine::close_session(uint32_t session, uint16_t code, std::string reason, std::string how) {
  post_to_session(loop_.get(), session,
                  [code, reason = std::move(reason), how = std::move(how)](WsSession& s) { s.close(code, reason, how); });
}

void Engine::open_datagram_stream(uint32_t session, uint32_t stream, std::string target) {
  post_to_session(loop_.get(), session, [stream, target = std::move(target)](WsSession& s) mutable {
    s.open_datagrams(stream, std::move(target));
  });
}

void Engine::accept_datagrams(uint32_t session, uint32_t stream) {
  post_to_session(loop_.get(), session, [stream](WsSession& s) { s.accept_datagrams(stream); });
}

void Engine::close_stream(uint32_t session, uint32_t stream, uint16_t code) {
  post_to_session(loop_.get(), session, [stream, code](WsSession& s) { s.close_stream(stream, code); });
}

void Engine::send_control(uint32_t session, uint8_t type, std::string body) {
  post_to_session(loop_.get(), session, [type, body = std::move(body)](WsSession& s) { s.send_control(type, body); });
}

void Engine::send_datagram(uint32_t session, uint32_t stream, std::string payload) {
  Loop* loop = loop_.get();
  // Bounded like the other direction: JavaScript may read a UDP socket faster than the link drains.
  if (!loop->events().admit_outgoing_datagram(payload.size())) return;
  loop->post([loop, session, stream, payload = std::move(payload)] {
    loop->events().outgoing_datagram_done(payload.size());
    if (WsSession* s = loop->find_session(session)) s->send_datagram(stream, payload);
  }, session);
}

void Engine::listen(uint32_t listener, UniqueFd fd, std::string target, uint32_t timeout_ms) {
  Loop* loop = loop_.get();
  loop->post([loop, listener, fd = std::move(fd), target = std::move(target), timeout_ms]() mutable {
    if (loop->listeners().count(listener) != 0) return;  // an id in use (see Loop::install): the fd closes
    auto l = std::make_unique<Listener>(*loop, listener, std::move(fd), std::move(target), timeout_ms);
    if (!l->start()) {
      Event e(Event::kListener);
      e.session = listener;
      e.code = errno ? errno : EBADF;
      loop->events().emit(std::move(e));
      return;
    }
    loop->listeners()[listener] = std::move(l);
  });
}

namespace {

template <class F>
void post_to_listener(Loop* loop, uint32_t listener, F f) {
  loop->post([loop, listener, f = std::move(f)]() mutable {
    auto it = loop->listeners().find(listener);
    if (it != loop->listeners().end()) f(*it->second);
  });
}

}  // namespace

void Engine::grant_listener(uint32_t listener, uint32_t session, uint32_t first_id, uint32_t count) {
  post_to_listener(loop_.get(), listener, [session, first_id, count](Listener& l) { l.grant(session, first_id, count); });
}

void Engine::close_listener(uint32_t listener) {
  Loop* loop = loop_.get();
  post_to_listener(loop, listener, [](Listener& l) { l.close(); });
}

}  // namespace tws
