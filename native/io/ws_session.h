// One WebSocket connection carrying TWS2: frame I/O on a Wire (plain TCP or
// TLS), the close handshake, pings and the peer's liveness, the read gate,
// and the client upgrade when the engine does it. The TWS2 mux (core/mux.h)
// runs inside; this is its host: it writes the frames the mux queues and
// passes its events on. The streams' local sockets, and the targets the
// engine dials, are LocalSockets' (local_sockets.h). [I/O thread only]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/ahead_target.h"
#include "../core/client_upgrade.h"
#include "../core/liveness.h"
#include "../core/mux.h"
#include "../core/out_queue.h"
#include "../core/session_options.h"
#include "../core/tws2.h"
#include "../core/ws_frame.h"
#include "fd.h"
#include "local_sockets.h"
#include "pollable.h"
#include "wire.h"

namespace tws {

class Loop;

// Flow-control credit granted and not yet written locally, summed over every
// session of every engine in the process (SessionOptions::process_budget).
extern std::atomic<int64_t> g_process_credit;

class WsSession final : public Pollable, private mux::MuxHost {
 public:
  // A session stops reading from its peer while this much waits to be sent
  // to it: what the peer makes us answer (pongs, RESETs, WINDOWs) cannot
  // pile up when it does not read. DATA alone never gets here (the mux
  // stops at kSendHighWater, plus one frame), so a peer that reads is never held back.
  static constexpr size_t kReadGate = 1024 * 1024;
  static constexpr double kCloseGraceMs = 2000;

  // `wire` defaults to plain TCP over `fd`.
  WsSession(Loop& loop, uint32_t id, UniqueFd fd, const SessionOptions& o, std::unique_ptr<Wire> wire = nullptr);
  ~WsSession() override;

  // With `await_upgrade` the preamble is the client's upgrade request: the
  // response head goes to JavaScript to judge (Event::kUpgradeHead) and no
  // WebSocket byte is parsed until it says so (upgraded()).
  bool start(const std::string& head, const std::string& preamble, bool await_upgrade);
  uint32_t id() const { return id_; }
  bool dead() const { return dead_; }
  // In the loop's list of sessions with work for the next turn (Loop::mark_dirty).
  bool queued() const { return queued_; }
  void set_queued(bool q) { queued_ = q; }
  // New streams may open: up, not closing, and neither side going away.
  bool takes_new_streams() const { return !closing_ && !dead_ && !upgrade_.pending() && !mux_.draining() && !mux_.peer_draining(); }

  // ---- commands (see Engine in engine.h) ----
  // `out`, when given, makes a split stream: `fd` is read, `out` written.
  void open_stream(uint32_t sid, UniqueFd fd, std::string target, std::string initial, std::unique_ptr<const mux::Reply> reply,
                   UniqueFd out = UniqueFd());
  void open_datagrams(uint32_t sid, std::string target);
  void accept_stream(uint32_t sid, UniqueFd fd, std::string initial);
  void accept_datagrams(uint32_t sid);
  void send_datagram(uint32_t sid, const std::string& payload);
  void close_stream(uint32_t sid, uint16_t code);
  void send_control(uint8_t type, const std::string& body);
  void dial(uint32_t sid, const std::string& address, uint16_t port, uint32_t timeout_ms);
  void reject(uint32_t sid, uint16_t code, const std::string& reason);
  void goaway(uint16_t code, const std::string& reason);
  // Closes with `code` and `reason`; the streams still open end as `how`.
  void close(uint16_t code, const std::string& reason, const std::string& how);
  void upgraded();
  // Answer ahead (server): `slots` more OPENs of tcp streams to a canonical IP
  // literal (core/ahead_target.h) are dialled here without asking JavaScript
  // (Event::kOpenedAhead instead of kOpenRequest), within timeout_ms each.
  // JavaScript grants only while the session's policy has no allow-list.
  void grant_ahead(uint32_t slots, uint32_t timeout_ms);
  // The policy may have changed: no more dials ahead; the slots not used go
  // back (Event::kAheadReturned).
  void revoke_ahead();

  // ---- the loop ----
  void on_events(uint32_t events) override;
  void stream_event(uint32_t sid, uint32_t events);
  void work();            // one turn: read, pump, write
  void resume_reading();  // JavaScript caught up with the events
  void tick(double now);

  // ---- tws2::MessageReader's sink ----
  // After a protocol error nothing more is parsed; while we close normally
  // parsing goes on, to see the peer's close frame, but the peer's TWS2
  // messages are ignored once our close frame is queued (as the js engine
  // does): a session closed for policy (a removed user) must open nothing.
  bool wants_stop() const { return dead_ || error_ || mux_.error(); }
  void on_data(uint32_t sid, uint8_t* p, size_t n) {
    if (!closing_) mux_.on_data(sid, p, n);
  }
  void on_data_end(uint32_t) {}
  void on_frame(uint8_t type, uint32_t sid, uint8_t* body, size_t n) {
    if (!closing_) mux_.on_frame(type, sid, body, n);
  }
  void on_control(uint8_t op, uint8_t* p, size_t n);

 private:
  // ---- mux::MuxHost ----
  void send_frame(uint8_t type, uint32_t stream, const uint8_t* body, size_t n) override;
  void send_data(uint32_t stream, Buf b, size_t n) override;
  size_t send_backlog() const override { return out_.message_bytes(); }
  bool can_send() const override { return !closing_ && !dead_; }
  void emit(Event e) override;
  void emit_datagram(uint32_t stream, const uint8_t* p, size_t n) override;
  void datagram_dropped() override;
  void retire(std::unique_ptr<mux::Stream> s) override;
  bool drained() override;
  void want_pump() override;

  double sync_time();  // the time now, also given to the mux
  const uint8_t* mask_key(uint8_t* key);  // a fresh key for a client's frame, or null for a server's
  void watch(mux::Stream& s);
  void read_some();
  void read_upgrade_head(const uint8_t* p, size_t n);
  void fail_upgrade(uint16_t code, const std::string& reason);
  void feed(uint8_t* p, size_t n);
  void queue_control(uint8_t op, const uint8_t* p, size_t n);
  void send_close(uint16_t code, const std::string& reason);
  void flush();
  bool out_empty() const { return out_.empty() && !wire_->holding(); }
  bool link_idle(double now) const;
  void ping(double now);
  void lost(uint16_t code, const std::string& reason);  // the connection failed: streams reset, session closed
  void teardown();
  // An OPEN the mux reports: taken ahead (true) when the grant covers it.
  bool take_ahead(Event& e);
  void dial_ahead();  // the OPENs taken ahead while parsing, dialled once the parser is done

  Loop& loop_;
  uint32_t id_;
  UniqueFd fd_;
  std::unique_ptr<Wire> wire_;  // after fd_: it goes first
  SessionOptions o_;
  ws::Parser parser_;
  std::unique_ptr<tws2::MessageReader<WsSession>> reader_;
  LocalSockets locals_;
  mux::Mux mux_;  // after locals_, its LocalIo
  OutQueue out_;
  Liveness liveness_;
  bool readable_ = true;
  bool writable_ = true;
  double gated_since_ = 0;  // when reading from the peer stopped because it is not reading what we send (0: reading)
  double held_since_ = 0;   // when the wire first held reading back (Wire::reading_held), 0 since a read
  ClientUpgrade upgrade_;  // the client's upgrade, when the engine does it (TLS)
  bool closing_ = false;
  bool close_received_ = false;
  bool dead_ = false;
  bool queued_ = false;
  bool error_ = false;
  uint16_t close_code_ = 0;
  std::string close_reason_;
  double close_deadline_ = 0;
  uint32_t ahead_slots_ = 0;  // reserve slots JavaScript granted and no OPEN used yet
  uint32_t ahead_timeout_ms_ = 0;
  std::vector<std::pair<uint32_t, AheadTarget>> ahead_dials_;
};

}  // namespace tws
