// The event-loop-free data plane: one I/O thread with its own epoll loop that
// owns every adopted fd, speaks WebSocket + TWS2, and relays stream bytes
// (and a second one for a server's TLS handshakes, see front_tls).
// This is its facade, the only part the binding (addon.cc) sees; behind it:
// io/loop.h (the thread), io/ws_session.h (a WebSocket), core/mux.h (TWS2),
// io/stream_socket.h, io/dialer.h, io/tls_front.h.
// JavaScript sends commands (adopt a socket, open/accept/reject a stream,
// GOAWAY, close) and receives control events in batches. Payload bytes never
// cross into JavaScript. The TypeScript side is src/engine/native.ts.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/event.h"
#include "../core/mux.h"
#include "../core/session_options.h"
#include "fd.h"

namespace tws {

// Counters of what the engine dropped rather than queue without bound. [any thread]
struct EngineStats {
  uint64_t datagrams_dropped = 0;  // UDP payloads dropped: link full, JavaScript behind, or held too long
  uint32_t fronts = 0;             // TLS connections before their upgrade (front_tls), each holding three fds
};

class Loop;
class Wire;

class Engine {
 public:
  // `notify` is called on the I/O thread whenever events become pending; it
  // must be thread-safe (the binding uses ThreadSafeFunction::NonBlockingCall).
  explicit Engine(std::function<void()> notify);
  ~Engine();  // stops and joins the I/O thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Polls for up to `us` microseconds after each burst of activity before
  // sleeping in epoll_wait (0, the default: never). Call before start(). [JS thread]
  void set_busy_poll(uint32_t us);
  // Starts the I/O thread. [JS thread]
  bool start(std::string* error);
  // Stops it: every session is dropped, every fd closed. False when a
  // thread did not stop (Loop::stop): it is left running, with its loop,
  // which is never freed. [JS thread]
  bool stop();

  // Commands: each returns at once; the I/O thread carries it out. Fds passed
  // in become the engine's: a command owns them until it runs, and one that
  // never runs (the engine stopped) closes them. [JS thread]
  void adopt(uint32_t session, UniqueFd fd, std::string head, std::string preamble, SessionOptions options);
  // A client connection on which the engine itself does the WebSocket upgrade,
  // over `wire` (TLS): it writes `request`, reports the response head
  // (Event::kUpgradeHead) and then waits for upgraded() or close_session().
  void adopt_upgrading(uint32_t session, UniqueFd fd, std::unique_ptr<Wire> wire, std::string request, SessionOptions options);
  void upgraded(uint32_t session);
  // A server's TLS connection (tcp_fd, with `wire` over it) whose plaintext is
  // relayed to and from pair_fd, one end of a socketpair whose other end
  // JavaScript's HTTP server reads, until adopt_front() turns it into a
  // WsSession: js_fd is JavaScript's end (bytes it never read are taken from
  // it), head what it read past the request, preamble the 101. Fronts run on
  // a second thread ("tws-tls", started with the first), so that handshakes
  // anyone can ask for do not take the sessions' thread; the session then
  // moves to the sessions' thread, and commands for it wait until it is there.
  void front_tls(uint32_t front, UniqueFd tcp_fd, UniqueFd pair_fd, std::unique_ptr<Wire> wire);
  void adopt_front(uint32_t session, uint32_t front, UniqueFd js_fd, std::string head, std::string preamble, SessionOptions options);
  // `reply` (may be null): what the engine answers the local socket with (mux::Reply).
  // `out`, when given, makes a split stream (see WsSession::open_stream).
  void open_stream(uint32_t session, uint32_t stream, UniqueFd fd, std::string target, std::string initial,
                   std::unique_ptr<const mux::Reply> reply = nullptr, UniqueFd out = UniqueFd());
  void accept_stream(uint32_t session, uint32_t stream, UniqueFd fd, std::string initial);
  // Connects the target itself (`address`: an IP literal, already approved),
  // then accepts the stream; RESET 2 or 3 (after timeout_ms) when it cannot.
  void dial_stream(uint32_t session, uint32_t stream, std::string address, uint16_t port, uint32_t timeout_ms);
  void reject_stream(uint32_t session, uint32_t stream, uint16_t code, std::string reason);
  // Answer ahead (WsSession::grant_ahead): `slots` more tcp OPENs to IP
  // literals the server session dials without asking; revoke_ahead() ends
  // it (Event::kAheadReturned says how many slots were left). A session
  // gone meanwhile holds nothing: JavaScript frees its slots at its close.
  void grant_ahead(uint32_t session, uint32_t slots, uint32_t timeout_ms);
  void revoke_ahead(uint32_t session);
  void goaway(uint32_t session, uint16_t code, std::string reason);
  // Closes with `code` and `reason`; streams still open end as `how` (their stream-closed text).
  void close_session(uint32_t session, uint16_t code, std::string reason, std::string how);
  // UDP streams: datagrams are small and rare, so they cross to JavaScript
  // (Event::kDatagram) instead of going to an fd. Both ways are bounded: a
  // datagram that would queue past the bound is dropped and counted.
  void open_datagram_stream(uint32_t session, uint32_t stream, std::string target);
  void accept_datagrams(uint32_t session, uint32_t stream);
  void send_datagram(uint32_t session, uint32_t stream, std::string payload);
  void close_stream(uint32_t session, uint32_t stream, uint16_t code);
  void send_control(uint32_t session, uint8_t type, std::string body);
  // Native accept (io/listener.h): `fd` a listening socket whose connections
  // become streams to `target`, on the sessions and ids grant_listener() gives;
  // without one, a connection waits up to timeout_ms.
  void listen(uint32_t listener, UniqueFd fd, std::string target, uint32_t timeout_ms);
  void grant_listener(uint32_t listener, uint32_t session, uint32_t first_id, uint32_t count);
  void close_listener(uint32_t listener);

  // Takes the pending events. [JS thread]
  std::vector<Event> take_events();
  EngineStats stats() const;

 private:
  // Where fronts run: fronts_loop_ once started, else (it could not start) loop_. [JS thread]
  Loop* front_loop();

  std::unique_ptr<Loop> loop_;
  std::unique_ptr<Loop> fronts_loop_;
  bool stuck_ = false;  // [JS thread] a loop's thread did not stop: the loops are leaked, not freed
  bool stopped_ = false;  // [JS thread] stop() was called
  Loop* front_loop_ = nullptr;  // [JS thread] chosen at the first front
};

}  // namespace tws
