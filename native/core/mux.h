// The TWS2 mux of one session (docs/protocol.md), sans I/O: streams and
// their states, credit and window auto-tuning (flow.h), round-robin
// scheduling of DATA, GOAWAY, stream ids. It is fed parsed TWS2 frames, the
// time, and what happened on the local sockets; it answers through a
// MuxHost (frames to send, events for JavaScript) and a LocalIo (bytes to
// write to or read from a local socket). It makes no syscall and keeps no clock: the I/O
// session (io/ws_session.h) and the tests (native/test/mux_test.cc,
// native/fuzz/mux_fuzz.cc) are its hosts. The rules mirror the js engine's
// (src/engine/js/: dispatch.ts, flow.ts, scheduler.ts), the reference
// implementation; flow.h and src/engine/flow-control.ts are checked against
// one table. [I/O thread, or a test's]
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "buffers.h"
#include "credit.h"
#include "event.h"
#include "intrusive_list.h"
#include "session_options.h"

namespace tws::mux {

// What the host keeps per stream (its local socket); the stream owns it.
// Not polymorphic, on purpose: the host's type frees itself through
// `free_fn`. A virtual destructor called through this base is checked by
// UBSan's vptr check, whose first check of a type opens a pipe; in a
// process out of fds (a case the tests create) the pipe fails and UBSan
// reports a valid object as invalid.
struct Port {
  using Free = void (*)(Port*);
  explicit Port(Free f) : free_fn(f) {}
  Free free_fn;

 protected:
  ~Port() = default;
};
struct PortFree {
  void operator()(Port* p) const { p->free_fn(p); }
};
using PortPtr = std::unique_ptr<Port, PortFree>;

// What the engine itself answers on an opened stream's local socket, for a
// proxy listener (HTTP CONNECT, SOCKS5) whose client waits for the verdict:
// `ok` when the peer accepts (before any of its bytes); on a RESET before
// OPEN_OK the first rule whose code matches (and whose `reason_includes`, if
// not empty, occurs in the reason), else `otherwise` (also when the stream
// ends any other way before OPEN_OK: the session lost, closed, drained),
// then a FIN. JavaScript bounds the sizes (kMaxReplyBytes, kMaxReplyRules).
struct Reply {
  static constexpr size_t kMaxBytes = 512;
  static constexpr size_t kMaxRules = 16;
  struct Rule {
    uint16_t code = 0;
    std::string reason_includes;
    std::string bytes;
  };
  std::string ok;
  std::vector<Rule> refused;
  std::string otherwise;

  // The bytes for a RESET with `code` and `reason`.
  const std::string& pick(uint16_t code, const std::string& reason) const {
    for (const Rule& r : refused) {
      if (r.code == code && (r.reason_includes.empty() || reason.find(r.reason_includes) != std::string::npos)) return r.bytes;
    }
    return otherwise;
  }
};

// One TWS2 stream: the flow-control state of both directions.
struct Stream {
  enum class State { kOpening, kAccepting, kOpen };

  // On the mux's ready list while it may have DATA to send; a stream that
  // ends leaves the list in finish() (and its destructor unlinks it anyway).
  ListHook ready_hook;
  uint32_t id;
  std::string target;
  State state;
  bool udp = false;
  PortPtr port;  // the local socket (none for udp streams)
  bool readable = false;       // the local socket may have bytes to read
  bool writable = false;       // the local socket may take bytes
  bool local_eof = false;
  bool fin_sent = false;
  bool fin_recv = false;
  bool shut_wr = false;
  bool done = false;
  double last_active = 0;
  int64_t send_credit;
  uint64_t recv_granted;
  uint64_t recvd = 0;
  uint64_t unreturned = 0;
  uint32_t recv_window;
  double epoch_start = 0;
  uint64_t epoch_bytes = 0;
  double rate_at_growth = 0;
  bool starved = false;  // this epoch the peer had less than window/8 of credit left at some point
  // Bytes from the peer not yet written to the local socket (early data, a
  // slow reader), or datagrams held while the stream opens.
  BufQueue pending;
  size_t pending_bytes = 0;
  // Bytes JavaScript read from the local socket before the handoff: sent first.
  std::string initial;
  // An opened stream's answer to its local socket (see Reply), if it has one;
  // `answer` the bytes a RESET picked, `local_first` the ok bytes not yet
  // written (they go before the peer's, and count for no credit).
  std::unique_ptr<const Reply> reply;
  const std::string* answer = nullptr;
  std::string local_first;
  uint64_t bytes_in = 0;   // written locally (tcp) / received (udp)
  uint64_t bytes_out = 0;  // sent to the peer

  Stream(uint32_t id_, std::string target_, State st, int64_t credit, uint32_t window);
};

// A read from a local socket.
struct LocalRead {
  enum Kind { kBytes, kEof, kWouldBlock, kInterrupted, kError } kind;
  size_t n = 0;
  int err = 0;  // kError: the errno
  // kBytes: the read emptied the socket, and its edge-triggered readiness
  // will say when more comes, so reading again now would only cost a call.
  bool drained = false;
};

// The local sockets, as the mux sees them (io/local_sockets.h does the syscalls).
class LocalIo {
 public:
  virtual ~LocalIo() = default;
  // Writes to the stream's local socket: bytes taken (0 when it would
  // block), or minus the errno when the socket failed.
  virtual ssize_t local_write(Stream& s, const uint8_t* p, size_t n) = 0;
  virtual LocalRead local_read(Stream& s, uint8_t* into, size_t n) = 0;
  virtual void local_shutdown(Stream& s) = 0;  // our direction ended (SHUT_WR)
  virtual void local_close(Stream& s, bool abortive) = 0;
};

// The rest of what the mux needs from the world around it: the peer, the
// control plane and the loop (io/ws_session.h).
class MuxHost {
 public:
  virtual ~MuxHost() = default;
  // Queues a TWS2 frame (not DATA) as one WebSocket message, in order with DATA.
  virtual void send_frame(uint8_t type, uint32_t stream, const uint8_t* body, size_t n) = 0;
  // Queues DATA: `b` (from data_buffer()) holds `n` payload bytes at kHeadroom.
  virtual void send_data(uint32_t stream, Buf b, size_t n) = 0;
  // Message bytes queued for the peer and not yet written.
  virtual size_t send_backlog() const = 0;
  // False once the session is closing: nothing more may be queued.
  virtual bool can_send() const = 0;
  virtual void emit(Event e) = 0;
  // A datagram from the peer for JavaScript (the host bounds them), or one dropped.
  virtual void emit_datagram(uint32_t stream, const uint8_t* p, size_t n) = 0;
  virtual void datagram_dropped() = 0;
  // A finished stream: the host frees it once nothing can point at it (after the loop turn).
  virtual void retire(std::unique_ptr<Stream> s) = 0;
  // We sent GOAWAY and the last stream ended: the host closes the session
  // (1001) and says true, or says false when it is closing already.
  virtual bool drained() = 0;
  // There is DATA to schedule: call pump() soon.
  virtual void want_pump() = 0;
};

class Mux {
 public:
  // With several streams waiting, each turn sends at most this much: a whole
  // frame. 64 KiB turns cost iperf3 -P 8 a third of its throughput and half
  // again its CPU per GB here (four times the frames, reads and writes),
  // and bought no latency: what a ping waits behind is kSendHighWater and
  // the kernel's socket buffers, not the turn (the bench's latency-under-load
  // rows did not move).
  static constexpr size_t kTurnBytes = 256 * 1024;
  // pump() stops while this much is queued for the peer, so pings never wait long.
  static constexpr size_t kSendHighWater = 512 * 1024;
  // Ids of closed streams remembered, so a late OPEN cannot reuse one.
  static constexpr size_t kRecentClosed = 4096;
  // Datagrams held per stream while it is being opened (a stream may wait
  // seconds for DNS): at most this many and this many bytes; more are dropped.
  static constexpr size_t kHeldDatagrams = 16;
  static constexpr size_t kHeldDatagramBytes = 16 * 1024;

  // `process_credit` is the credit outstanding over the whole process, shared by every Mux.
  Mux(MuxHost& host, LocalIo& local, uint32_t session, const SessionOptions& o, std::atomic<int64_t>& process_credit);
  Mux(const Mux&) = delete;
  Mux& operator=(const Mux&) = delete;

  // The time (ms, any monotonic origin) for what follows.
  void set_time(double now) { now_ = now; }
  // The link's base round trip (Liveness::base_rtt), for auto-tuning.
  void set_base_rtt(double ms) { base_rtt_ = ms; }

  // ---- from the peer (tws2::MessageReader's sink calls) ----
  void on_data(uint32_t sid, uint8_t* p, size_t n);
  void on_frame(uint8_t type, uint32_t sid, uint8_t* body, size_t n);
  // A rule the peer broke (set by the calls above): the session closes with 1002.
  const char* error() const { return error_; }

  // ---- commands from the control plane ----
  // Why a stream cannot be opened now, or nullptr.
  const char* cannot_open(uint32_t sid, bool udp) const;
  // Opens a stream to `target` (checked with cannot_open first); its local
  // socket is `port` (null for udp); `initial` goes out first; `reply` (tcp
  // only, may be null) is what the engine answers the local socket with.
  Stream& open(uint32_t sid, std::string target, bool udp, PortPtr port, std::string initial,
               std::unique_ptr<const Reply> reply = nullptr);
  // The stream the peer asked for, while JavaScript decides on it (null
  // when there is none, or it is decided).
  Stream* find_accepting(uint32_t sid);
  // Accepts it: OPEN_OK out, its local socket `port` (null: keep the one the
  // host attached, a dialled socket) connected; `initial` goes out first.
  // Writes nothing locally until start().
  void accept(Stream& s, PortPtr port, std::string initial);
  // An accepted stream's socket is ready: early data is written, reading begins.
  void start(Stream& s);
  void accept_datagrams(Stream& s);
  void reject(uint32_t sid, uint16_t code, const std::string& reason);
  void send_datagram(uint32_t sid, const uint8_t* p, size_t n);
  // Ends a stream the control plane gives up on (a udp stream whose local
  // peer is gone): RESET `code` to the peer, the stream finished "closed
  // locally". Nothing for an unknown or finished id.
  void close_stream(uint32_t sid, uint16_t code);
  // A reverse-tunnel frame from JavaScript (stream 0), unless the session is closing.
  void send_control(uint8_t type, const uint8_t* body, size_t n);
  // Sends GOAWAY and ends the udp streams (RESET 9: a drain would wait for
  // them forever); true when no stream is left (the host closes at once).
  bool goaway(uint16_t code, const std::string& reason);
  void reset_all(const std::string& why);

  // ---- the local sockets ----
  void local_readable(Stream& s);
  void local_writable(Stream& s);
  // The local socket failed with errno `err`: RESET 6, and the stream ends "local error: ECONNRESET".
  void local_error(Stream& s, int err);

  // Reads local sockets into DATA frames, round-robin, while there is room.
  void pump();
  // Idle tcp and udp streams end (RESET 7).
  void tick();

  Stream* find(uint32_t sid);
  size_t stream_count() const { return streams_.size(); }
  bool has_ready() const { return !ready_.empty(); }
  bool draining() const { return draining_; }
  bool peer_draining() const { return peer_draining_; }
  double last_data() const { return last_data_; }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

  // Frees a stream exactly once (the host retires the object).
  void finish(Stream& s, const std::string& how, bool abortive);

 private:
  void protocol_error(const char* why) {
    if (!error_) error_ = why;
  }
  void on_open(uint32_t sid, uint32_t window, uint8_t kind, std::string target);
  void on_open_ok(Stream& s, uint32_t window);
  void on_fin(Stream& s);
  void on_reset(Stream& s, uint16_t code, const uint8_t* reason, size_t n);
  void on_datagram(Stream& s, const uint8_t* p, size_t n);
  void on_goaway();
  void on_control(uint8_t type, const uint8_t* body, size_t n);
  void refuse(uint32_t sid, uint16_t code, const char* why, std::string target);

  // Credit: what the peers may still send us, per session and per process.
  Stream* add_stream(std::unique_ptr<Stream> s);
  void set_granted(Stream& s, uint64_t granted);
  // Bytes written to a local socket: credit goes back, and the window may grow.
  void consumed(Stream& s, size_t n);
  void tune(Stream& s);

  void hold_datagram(Stream& s, const uint8_t* p, size_t n);
  void flush_local(Stream& s);
  // Writes the stream's answer for a refusal, half-closes, and discards what the local side sent.
  void answer_refusal(Stream& s, const std::string& bytes);
  void maybe_shutdown(Stream& s);
  void check_done(Stream& s);
  void make_ready(Stream& s);
  void send_initial(Stream& s, size_t turn);
  void read_local(Stream& s, size_t turn);
  void sent_data(Stream& s, Buf b, size_t n);
  void maybe_fin(Stream& s);
  void mark_open(Stream& s);
  void connected(Stream& s);
  void send_open(const Stream& s);
  void send_reset(uint32_t sid, uint16_t code, const std::string& reason);
  void remember_closed(uint32_t sid);
  void emit_closed(uint32_t sid, uint64_t in, uint64_t out, const std::string& how);
  void emit_simple(Event::Kind k);

  MuxHost& host_;
  LocalIo& local_;
  uint32_t session_;
  SessionOptions o_;
  Credit credit_;  // after o_, which it reads
  double now_ = 0;
  double base_rtt_ = 0;
  const char* error_ = nullptr;
  bool draining_ = false;       // we sent GOAWAY
  bool peer_draining_ = false;  // the peer did
  double last_data_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  std::unordered_map<uint32_t, std::unique_ptr<Stream>> streams_;
  std::deque<uint32_t> recent_closed_;
  std::unordered_set<uint32_t> recent_closed_set_;
  // Streams that may have DATA to send, in round-robin order. Declared after
  // streams_, so it is cleared (unlinking every hook) before they go.
  IntrusiveList<Stream, &Stream::ready_hook> ready_;
};

// Encodes a RESET/GOAWAY body: the code, then the reason cut to 120 bytes on a UTF-8 boundary.
size_t coded_body(uint8_t* body, uint16_t code, const std::string& reason);

}  // namespace tws::mux
