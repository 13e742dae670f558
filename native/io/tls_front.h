// A server's TLS connection before its upgrade. The engine runs TLS and
// relays the plaintext through a socketpair to JavaScript's HTTP server,
// which reads the request (and answers probes) as for any connection; on
// upgrade, hand_over() gives up the TLS connection, which becomes a
// WsSession, and the socketpair goes away. Only the handshake and the
// upgrade pass through here, so the relay favours simplicity over speed.
// Fronts run on a loop of their own (Engine::front_tls): a handshake costs
// a signature, which anyone can make the server do, and that must not
// take the data plane's thread. [its loop's thread only]
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fd.h"
#include "pollable.h"
#include "wire.h"

namespace tws {

class Loop;

class Front {
 public:
  Front(Loop& loop, uint32_t id, UniqueFd tcp, UniqueFd pair, std::unique_ptr<Wire> wire);
  ~Front();
  Front(const Front&) = delete;
  Front& operator=(const Front&) = delete;

  bool start();
  // Moves bytes both ways until neither side can make progress.
  void relay();
  // The upgrade: the TLS connection, for the session that carries on where
  // JavaScript stopped (its loop need not be this one). `js_end` is
  // JavaScript's end of the pair: bytes it never read are still there and
  // join `head`; what it wrote and we had not sent yet goes in front of
  // `preamble`. The front is dead after it.
  struct Handoff {
    UniqueFd tcp;
    std::unique_ptr<Wire> wire;
  };
  Handoff hand_over(UniqueFd js_end, std::string* head, std::string* preamble);
  void close();
  bool dead() const { return dead_; }
  // JavaScript is done with it (answered and closed), but the client is not
  // taking the answer: give up after a while rather than hold the fds.
  void tick(double now);

 private:
  struct End final : Pollable {
    explicit End(Front* f) : front(f) {}
    Front* front;
    void on_events(uint32_t) override { front->relay(); }
  };
  bool pull_tls(uint8_t* buf);
  bool pull_js(uint8_t* buf);

  Loop& loop_;
  uint32_t id_;
  UniqueFd tcp_;
  UniqueFd pair_;
  std::unique_ptr<Wire> wire_;  // after tcp_: it goes first
  End tcp_end_{this};
  End pair_end_{this};
  std::string to_js_;
  std::string to_tls_;
  bool tls_done_ = false;
  bool js_done_ = false;
  double js_done_at_ = 0;
  bool dead_ = false;
};

}  // namespace tws
