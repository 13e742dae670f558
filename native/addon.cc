// The N-API binding of tws-native: the only file that includes napi.h.
//
// NativeEngine wraps the data plane (io/engine.h): commands go in as method
// calls that return at once; control events come back in batches through one
// ThreadSafeFunction. Payload bytes never cross. Every export, command and
// event shape is typed in src/engine/native-addon.ts, which checks kAbiVersion
// at load. testing.decodeStream() exposes the parser, testing.aheadTarget() the
// answer-ahead target check, for differential tests.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <napi.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/ahead_target.h"
#include "core/mux.h"
#include "core/tws2.h"
#include "core/ws_frame.h"
#include "io/engine.h"
#include "io/tls_wire.h"

namespace {

// The binding's version, exported as abiVersion: src/engine/native-addon.ts
// (NATIVE_ABI) refuses an addon with another. Raise both together whenever a
// command, an argument, an option or an event shape changes.
constexpr uint32_t kAbiVersion = 9;
// Numbers per event in Deliver's flat array, and the names of Event::Kind in its order.
constexpr size_t kEventNumbers = 6;
const char* const kEventKinds[] = {"open-request", "stream-closed", "session-closed", "goaway", "idle", "window", "datagram", "rtt",
                                   "upgrade-head", "tls-failed", "refused", "control", "local-opened", "listener", "opened-ahead",
                                   "ahead-returned"};
static_assert(sizeof kEventKinds / sizeof kEventKinds[0] == tws::Event::kAheadReturned + 1, "a name for every Event::Kind");

// Collects what the core decodes from one byte stream, for decodeStream():
// a DATA message as one item once it is complete (as ws delivers messages),
// other frames and control frames as they come.
struct Collector {
  struct Item {
    int kind;  // 0 data, 1 other frame, 2 control
    uint8_t type;
    uint32_t stream;
    std::string bytes;
  };
  std::vector<Item> items;
  std::string data_;  // the DATA message being received
  bool wants_stop() const { return false; }
  void on_data(uint32_t, uint8_t* p, size_t n) { data_.append(reinterpret_cast<char*>(p), n); }
  void on_data_end(uint32_t stream) {
    items.push_back({0, tws::tws2::kData, stream, std::move(data_)});
    data_.clear();
  }
  void on_frame(uint8_t type, uint32_t stream, uint8_t* body, size_t n) {
    items.push_back({1, type, stream, std::string(reinterpret_cast<char*>(body), n)});
  }
  void on_control(uint8_t op, uint8_t* p, size_t n) { items.push_back({2, op, 0, std::string(reinterpret_cast<char*>(p), n)}); }
};

// decodeStream(bytes: Buffer, server: boolean)
//   → { events: [{ kind, type, stream, body }], closeCode, reason }
// Parses WebSocket bytes as the given side would receive them (a server
// expects masked frames) and decodes the TWS2 frames inside. The input is
// copied first: the parser unmasks in place.
Napi::Value DecodeStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsBoolean()) {
    Napi::TypeError::New(env, "decodeStream(bytes: Buffer, server: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> in = info[0].As<Napi::Buffer<uint8_t>>();
  const bool server = info[1].As<Napi::Boolean>().Value();
  std::vector<uint8_t> bytes(in.Data(), in.Data() + in.Length());

  Collector collector;
  tws::ws::Parser parser(server ? tws::ws::Role::kServer : tws::ws::Role::kClient, tws::tws2::kMaxMessage);
  // The reader holds a 64 KiB buffer for small frames: keep it off the stack.
  auto reader = std::make_unique<tws::tws2::MessageReader<Collector>>(collector);
  tws::ws::ParseError err;
  parser.feed(bytes.data(), bytes.size(), *reader, &err);
  if (!err && reader->error()) err = reader->error();

  Napi::Array events = Napi::Array::New(env, collector.items.size());
  for (size_t i = 0; i < collector.items.size(); i++) {
    const auto& it = collector.items[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("kind", Napi::String::New(env, it.kind == 0 ? "data" : it.kind == 1 ? "frame" : "control"));
    e.Set("type", Napi::Number::New(env, it.type));
    e.Set("stream", Napi::Number::New(env, it.stream));
    e.Set("body", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(it.bytes.data()), it.bytes.size()));
    events.Set(static_cast<uint32_t>(i), e);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("events", events);
  out.Set("closeCode", Napi::Number::New(env, err.close_code));
  out.Set("reason", Napi::String::New(env, err.reason));
  return out;
}

// aheadTarget(target: string) → "host port" | null: whether a server session
// on an answer-ahead grant dials this OPEN target itself, and where
// (core/ahead_target.h), for the differential test against src/util/ip.ts.
Napi::Value AheadTargetOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "aheadTarget(target: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  tws::AheadTarget t;
  if (!tws::parse_ahead_target(info[0].As<Napi::String>().Utf8Value(), &t)) return env.Null();
  return Napi::String::New(env, t.host + " " + std::to_string(t.port));
}

// Duplicates a JS socket's fd (close-on-exec) so the engine owns its own
// reference and JavaScript can destroy its socket without closing ours.
// On failure (EMFILE, most likely) *err is the errno and the result empty.
tws::UniqueFd dup_fd(const Napi::Value& v, int* err) {
  *err = 0;
  if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) {
    *err = EBADF;
    return tws::UniqueFd();
  }
  tws::UniqueFd fd(::fcntl(v.As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0));
  if (!fd) *err = errno;
  return fd;
}

// One fd of a split stream (--stdio): the caller's stdin or stdout, whose
// open file description the shell and other processes share, so its flags
// are not ours to change. A pipe is opened anew through /proc (on Linux a new
// description of the same pipe), non-blocking; a socket is only duplicated,
// left blocking, and read and written with MSG_DONTWAIT (StreamSocket).
tws::UniqueFd split_end(const Napi::Value& v, bool write, int* err) {
  tws::UniqueFd fd = dup_fd(v, err);
  struct stat st;
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISFIFO(st.st_mode)) return fd;
  const std::string path = "/proc/self/fd/" + std::to_string(fd.get());
  tws::UniqueFd own(::open(path.c_str(), (write ? O_WRONLY : O_RDONLY) | O_NONBLOCK | O_CLOEXEC));
  if (!own) *err = errno;  // ENXIO: stdout's reader is gone already
  return own;
}

std::string bytes_of(const Napi::Value& v) {
  if (!v.IsBuffer()) return {};
  auto b = v.As<Napi::Buffer<char>>();
  return std::string(b.Data(), b.Length());
}

// A bounded buffer of a reply (Reply::kMaxBytes), or false.
bool reply_bytes(const Napi::Value& v, std::string* out) {
  if (!v.IsBuffer() || v.As<Napi::Buffer<char>>().Length() > tws::mux::Reply::kMaxBytes) return false;
  *out = bytes_of(v);
  return true;
}

// openStream's reply, { ok, refused: [{ code, reasonIncludes?, bytes }], otherwise }
// (src/engine/reply.ts checks it first): null when absent; a bad one throws
// a TypeError here, on the JavaScript thread, and never reaches the I/O thread.
std::unique_ptr<const tws::mux::Reply> reply_of(Napi::Env env, const Napi::Value& v, bool* ok) {
  *ok = true;
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  auto bad = [&]() -> std::unique_ptr<const tws::mux::Reply> {
    Napi::TypeError::New(env, "openStream: bad reply (ok/otherwise/rule bytes at most 512 bytes, at most 16 rules)")
        .ThrowAsJavaScriptException();
    *ok = false;
    return nullptr;
  };
  if (!v.IsObject()) return bad();
  Napi::Object o = v.As<Napi::Object>();
  auto r = std::make_unique<tws::mux::Reply>();
  if (!reply_bytes(o.Get("ok"), &r->ok) || !reply_bytes(o.Get("otherwise"), &r->otherwise)) return bad();
  Napi::Value rules = o.Get("refused");
  if (!rules.IsArray() || rules.As<Napi::Array>().Length() > tws::mux::Reply::kMaxRules) return bad();
  Napi::Array list = rules.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    if (!item.IsObject()) return bad();
    Napi::Object rule = item.As<Napi::Object>();
    tws::mux::Reply::Rule rr;
    Napi::Value code = rule.Get("code");
    Napi::Value includes = rule.Get("reasonIncludes");
    if (!code.IsNumber() || !reply_bytes(rule.Get("bytes"), &rr.bytes)) return bad();
    const double c = code.As<Napi::Number>().DoubleValue();
    if (!(c >= 0 && c <= 65535)) return bad();
    rr.code = static_cast<uint16_t>(c);
    if (!includes.IsUndefined()) {
      if (!includes.IsString()) return bad();
      rr.reason_includes = includes.As<Napi::String>().Utf8Value();
      if (rr.reason_includes.size() > tws::tws2::kMaxReason) return bad();
    }
    r->refused.push_back(std::move(rr));
  }
  return r;
}

// new NativeEngine(onEvents: (events: object[]) => void, { busyPollUs }?)
class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine", {
      InstanceMethod<&NativeEngine::Adopt>("adopt"),
      InstanceMethod<&NativeEngine::AdoptTls>("adoptTls"),
      InstanceMethod<&NativeEngine::Upgraded>("upgraded"),
      InstanceMethod<&NativeEngine::FrontTls>("frontTls"),
      InstanceMethod<&NativeEngine::AdoptFront>("adoptFront"),
      InstanceMethod<&NativeEngine::OpenStream>("openStream"),
      InstanceMethod<&NativeEngine::AcceptStream>("acceptStream"),
      InstanceMethod<&NativeEngine::DialStream>("dialStream"),
      InstanceMethod<&NativeEngine::RejectStream>("rejectStream"),
      InstanceMethod<&NativeEngine::GrantAhead>("grantAhead"),
      InstanceMethod<&NativeEngine::RevokeAhead>("revokeAhead"),
      InstanceMethod<&NativeEngine::CloseStream>("closeStream"),
      InstanceMethod<&NativeEngine::Goaway>("goaway"),
      InstanceMethod<&NativeEngine::CloseSession>("closeSession"),
      InstanceMethod<&NativeEngine::OpenDatagramStream>("openDatagramStream"),
      InstanceMethod<&NativeEngine::AcceptDatagrams>("acceptDatagrams"),
      InstanceMethod<&NativeEngine::SendDatagram>("sendDatagram"),
      InstanceMethod<&NativeEngine::SendControl>("sendControl"),
      InstanceMethod<&NativeEngine::Listen>("listen"),
      InstanceMethod<&NativeEngine::GrantListener>("grantListener"),
      InstanceMethod<&NativeEngine::CloseListener>("closeListener"),
      InstanceMethod<&NativeEngine::Stats>("stats"),
      InstanceMethod<&NativeEngine::Ref>("ref"),
      InstanceMethod<&NativeEngine::Unref>("unref"),
      InstanceMethod<&NativeEngine::Stop>("stop"),
    });
  }

  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(env, "NativeEngine(onEvents)").ThrowAsJavaScriptException();
      return;
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "tws-native events", 0, 1);
    tsfn_.Unref(env);  // no sessions yet: do not keep the process alive
    Napi::ThreadSafeFunction tsfn = tsfn_;
    NativeEngine* self = this;
    engine_.reset(new tws::Engine([tsfn, self]() mutable {
      // [I/O thread] One call drains every event pending by the time it runs.
      tsfn.NonBlockingCall([self](Napi::Env env, Napi::Function cb) { self->Deliver(env, cb); });
    }));
    if (info[1].IsObject()) {
      Napi::Value busy = info[1].As<Napi::Object>().Get("busyPollUs");
      if (busy.IsNumber()) engine_->set_busy_poll(busy.As<Napi::Number>().Uint32Value());
    }
    std::string err;
    if (!engine_->start(&err)) {
      Napi::Error::New(env, "native engine: " + err).ThrowAsJavaScriptException();
      return;
    }
    napi_add_env_cleanup_hook(env, &NativeEngine::Cleanup, this);
    env_ = env;
    started_ = true;
  }

  // Collected before the environment ends: the hook must not outlive us.
  ~NativeEngine() override {
    if (env_) napi_remove_env_cleanup_hook(env_, &NativeEngine::Cleanup, this);
    Shutdown();
  }

 private:
  static void Cleanup(void* arg) {
    auto* self = static_cast<NativeEngine*>(arg);
    self->env_ = nullptr;  // the environment removes the hook itself as it runs it
    self->Shutdown();
  }

  // Stops the I/O thread (joining it) before the ThreadSafeFunction goes.
  void Shutdown() {
    if (!started_) return;
    started_ = false;
    engine_->stop();
    tsfn_.Abort();
  }

  // Hands JavaScript every pending event as flat arrays rather than an
  // object each: building objects property by property through N-API cost
  // seven calls per event, ~6% of a server opening streams. `nums` holds
  // kEventNumbers per event (kind, session, stream, code, bytes in, bytes
  // out), `texts` each one's text (a Buffer for a payload), `notes` each
  // one's note, or is undefined when none has one. src/engine/native-addon.ts
  // (unpackEvents) turns them back into objects.
  void Deliver(Napi::Env env, Napi::Function cb) {
    if (!engine_) return;
    std::vector<tws::Event> events = engine_->take_events();
    if (events.empty()) return;
    const size_t n = events.size();
    Napi::Float64Array nums = Napi::Float64Array::New(env, n * kEventNumbers);
    Napi::Array texts = Napi::Array::New(env, n);
    Napi::Array notes;
    for (size_t i = 0; i < n; i++) {
      const tws::Event& e = events[i];
      double* d = nums.Data() + i * kEventNumbers;
      d[0] = e.kind;
      d[1] = e.session;
      d[2] = e.stream;
      d[3] = e.code;
      d[4] = static_cast<double>(e.bytes_in);
      d[5] = static_cast<double>(e.bytes_out);
      const bool bytes = e.kind == tws::Event::kDatagram || e.kind == tws::Event::kControl;
      texts.Set(static_cast<uint32_t>(i), bytes ? Napi::Buffer<char>::Copy(env, e.text.data(), e.text.size()).As<Napi::Value>()
                                                : Napi::String::New(env, e.text).As<Napi::Value>());
      if (e.note.empty()) continue;
      if (notes.IsEmpty()) notes = Napi::Array::New(env, n);
      notes.Set(static_cast<uint32_t>(i), Napi::String::New(env, e.note));
    }
    cb.Call({nums, texts, notes.IsEmpty() ? env.Undefined() : notes.As<Napi::Value>()});
  }

  // The options JavaScript passed, or a TypeError naming the bad one (thrown; the result is then unused).
  static tws::SessionOptions session_options(Napi::Env env, Napi::Object o, bool* ok) {
    tws::SessionOptions opts;
    opts.server = o.Get("server").ToBoolean().Value();
    opts.timeout_ms = o.Get("timeoutMs").ToNumber().Uint32Value();
    opts.initial_window = o.Get("initialWindow").ToNumber().Uint32Value();
    opts.max_window = o.Get("maxWindow").ToNumber().Uint32Value();
    opts.max_streams = o.Get("maxStreams").ToNumber().Uint32Value();
    opts.udp_timeout_ms = o.Get("udpTimeoutMs").ToNumber().Uint32Value();
    if (o.Has("idleTimeoutMs")) opts.idle_timeout_ms = o.Get("idleTimeoutMs").ToNumber().Uint32Value();
    if (o.Has("sessionBudget")) opts.session_budget = static_cast<uint64_t>(o.Get("sessionBudget").ToNumber().Int64Value());
    if (o.Has("processBudget")) opts.process_budget = static_cast<uint64_t>(o.Get("processBudget").ToNumber().Int64Value());
    opts.no_udp = o.Get("noUdp").ToBoolean().Value();
    opts.accept_streams = o.Get("acceptStreams").ToBoolean().Value();
    const char* bad = tws::invalid_options(opts);
    *ok = bad == nullptr;
    if (bad) Napi::TypeError::New(env, std::string("session options: ") + bad).ThrowAsJavaScriptException();
    return opts;
  }

  // Handoff commands return 0, or the errno that stopped them (the caller
  // then still owns its socket and reports the failure).
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    // adopt(session, fd, head, preamble, { server, timeoutMs, initialWindow, maxWindow, maxStreams, ... })
    Napi::Env env = info.Env();
    if (!info[4].IsObject()) return Napi::Number::New(env, EINVAL);
    bool ok;
    tws::SessionOptions opts = session_options(env, info[4].As<Napi::Object>(), &ok);
    if (!ok) return env.Undefined();
    int err;
    tws::UniqueFd fd = dup_fd(info[1], &err);
    if (!fd) return Napi::Number::New(env, err);
    engine_->adopt(info[0].ToNumber().Uint32Value(), std::move(fd), bytes_of(info[2]), bytes_of(info[3]), opts);
    return Napi::Number::New(env, 0);
  }

  // adoptTls(session, fd, context, { servername, verifyName }, request, sessionOptions):
  // a connected plain socket on which the engine runs TLS and the upgrade.
  // Returns '' or why it cannot.
  Napi::Value AdoptTls(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[2].IsExternal() || !info[3].IsObject() || !info[5].IsObject()) return Napi::String::New(env, "bad arguments");
    const auto& context = *info[2].As<Napi::External<std::shared_ptr<tws::TlsContext>>>().Data();
    Napi::Object t = info[3].As<Napi::Object>();
    bool ok;
    tws::SessionOptions opts = session_options(env, info[5].As<Napi::Object>(), &ok);
    if (!ok) return env.Undefined();
    int err;
    tws::UniqueFd fd = dup_fd(info[1], &err);
    if (!fd) return Napi::String::New(env, std::string("cannot take over the socket: ") + std::strerror(err));
    std::string error;
    std::unique_ptr<tws::Wire> wire = tws::make_tls_client(fd.get(), *context, t.Get("servername").ToString().Utf8Value(),
                                                           t.Get("verifyName").ToString().Utf8Value(), &error);
    if (!wire) return Napi::String::New(env, error);  // fd closes here
    engine_->adopt_upgrading(info[0].ToNumber().Uint32Value(), std::move(fd), std::move(wire), bytes_of(info[4]), opts);
    return Napi::String::New(env, "");
  }

  void Upgraded(const Napi::CallbackInfo& info) { engine_->upgraded(info[0].ToNumber().Uint32Value()); }

  // frontTls(front, fd, serverContext): the engine runs TLS on an accepted
  // socket and relays its plaintext through a socketpair. Returns JavaScript's
  // end of the pair (an fd it now owns), or why it cannot.
  Napi::Value FrontTls(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[2].IsExternal()) return Napi::String::New(env, "bad arguments");
    const auto& context = *info[2].As<Napi::External<std::shared_ptr<tws::TlsContext>>>().Data();
    int err;
    tws::UniqueFd fd = dup_fd(info[1], &err);
    if (!fd) return Napi::String::New(env, std::string("cannot take over the socket: ") + std::strerror(err));
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return Napi::String::New(env, std::strerror(errno));
    tws::UniqueFd ours(pair[0]);
    tws::UniqueFd theirs(pair[1]);
    ::fcntl(ours.get(), F_SETFL, ::fcntl(ours.get(), F_GETFL) | O_NONBLOCK);
    std::string error;
    std::unique_ptr<tws::Wire> wire = tws::make_tls_server(fd.get(), *context, &error);
    if (!wire) return Napi::String::New(env, error);
    engine_->front_tls(info[0].ToNumber().Uint32Value(), std::move(fd), std::move(ours), std::move(wire));
    // JavaScript's end: from here on its Socket owns and closes it.
    return Napi::Number::New(env, theirs.release());
  }

  // adoptFront(session, front, jsFd, head, preamble, sessionOptions): the upgrade of a frontTls connection.
  Napi::Value AdoptFront(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[5].IsObject()) return Napi::Number::New(env, EINVAL);
    bool ok;
    tws::SessionOptions opts = session_options(env, info[5].As<Napi::Object>(), &ok);
    if (!ok) return env.Undefined();
    int err;
    tws::UniqueFd fd = dup_fd(info[2], &err);
    if (!fd) return Napi::Number::New(env, err);
    engine_->adopt_front(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), std::move(fd), bytes_of(info[3]),
                         bytes_of(info[4]), opts);
    return Napi::Number::New(env, 0);
  }

  Napi::Value OpenStream(const Napi::CallbackInfo& info) {
    // openStream(session, stream, fd, target, initial, reply?, writeFd?): with writeFd, fd is only read (a split stream)
    bool ok;
    std::unique_ptr<const tws::mux::Reply> reply = reply_of(info.Env(), info[5], &ok);
    if (!ok) return info.Env().Undefined();
    int err;
    const bool split = info.Length() > 6 && !info[6].IsUndefined();
    tws::UniqueFd fd = split ? split_end(info[2], false, &err) : dup_fd(info[2], &err);
    if (!fd) return Napi::Number::New(info.Env(), err);
    tws::UniqueFd out;
    if (split) {
      out = split_end(info[6], true, &err);
      if (!out) return Napi::Number::New(info.Env(), err);
    }
    engine_->open_stream(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), std::move(fd),
                         info[3].ToString().Utf8Value(), bytes_of(info[4]), std::move(reply), std::move(out));
    return Napi::Number::New(info.Env(), 0);
  }

  Napi::Value AcceptStream(const Napi::CallbackInfo& info) {
    // acceptStream(session, stream, fd, initial)
    int err;
    tws::UniqueFd fd = dup_fd(info[2], &err);
    if (!fd) return Napi::Number::New(info.Env(), err);
    engine_->accept_stream(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), std::move(fd), bytes_of(info[3]));
    return Napi::Number::New(info.Env(), 0);
  }

  void DialStream(const Napi::CallbackInfo& info) {
    // dialStream(session, stream, address, port, timeoutMs)
    engine_->dial_stream(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), info[2].ToString().Utf8Value(),
                         static_cast<uint16_t>(info[3].ToNumber().Uint32Value()), info[4].ToNumber().Uint32Value());
  }

  void GrantAhead(const Napi::CallbackInfo& info) {
    // grantAhead(session, slots, timeoutMs)
    engine_->grant_ahead(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), info[2].ToNumber().Uint32Value());
  }

  void RevokeAhead(const Napi::CallbackInfo& info) { engine_->revoke_ahead(info[0].ToNumber().Uint32Value()); }

  void RejectStream(const Napi::CallbackInfo& info) {
    engine_->reject_stream(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(),
                           static_cast<uint16_t>(info[2].ToNumber().Uint32Value()), info[3].ToString().Utf8Value());
  }

  void Goaway(const Napi::CallbackInfo& info) {
    engine_->goaway(info[0].ToNumber().Uint32Value(), static_cast<uint16_t>(info[1].ToNumber().Uint32Value()),
                    info[2].ToString().Utf8Value());
  }

  void CloseSession(const Napi::CallbackInfo& info) {
    // closeSession(session, code, reason, how): `how` is what the streams it ends are reported as
    engine_->close_session(info[0].ToNumber().Uint32Value(), static_cast<uint16_t>(info[1].ToNumber().Uint32Value()),
                           info[2].ToString().Utf8Value(), info[3].ToString().Utf8Value());
  }

  void OpenDatagramStream(const Napi::CallbackInfo& info) {
    engine_->open_datagram_stream(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), info[2].ToString().Utf8Value());
  }

  void AcceptDatagrams(const Napi::CallbackInfo& info) {
    engine_->accept_datagrams(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value());
  }

  void SendDatagram(const Napi::CallbackInfo& info) {
    engine_->send_datagram(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), bytes_of(info[2]));
  }

  void CloseStream(const Napi::CallbackInfo& info) {
    // closeStream(session, stream, code)
    engine_->close_stream(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(),
                          static_cast<uint16_t>(info[2].ToNumber().Uint32Value()));
  }

  void SendControl(const Napi::CallbackInfo& info) {
    // sendControl(session, type, body): a reverse-tunnel frame on stream 0
    engine_->send_control(info[0].ToNumber().Uint32Value(), static_cast<uint8_t>(info[1].ToNumber().Uint32Value()), bytes_of(info[2]));
  }

  Napi::Value Listen(const Napi::CallbackInfo& info) {
    // listen(listener, fd, target, timeoutMs): the engine accepts on a duplicate of the listening socket fd; 0 or an errno
    int err;
    tws::UniqueFd fd = dup_fd(info[1], &err);
    if (!fd) return Napi::Number::New(info.Env(), err);
    engine_->listen(info[0].ToNumber().Uint32Value(), std::move(fd), info[2].ToString().Utf8Value(), info[3].ToNumber().Uint32Value());
    return Napi::Number::New(info.Env(), 0);
  }

  void GrantListener(const Napi::CallbackInfo& info) {
    // grantListener(listener, session, firstId, count): session 0 takes the grant back
    engine_->grant_listener(info[0].ToNumber().Uint32Value(), info[1].ToNumber().Uint32Value(), info[2].ToNumber().Uint32Value(),
                            info[3].ToNumber().Uint32Value());
  }

  void CloseListener(const Napi::CallbackInfo& info) { engine_->close_listener(info[0].ToNumber().Uint32Value()); }

  // stats() → { datagramsDropped, fronts }: what the engine dropped rather than queue without bound, and TLS connections before their upgrade.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    const tws::EngineStats st = engine_->stats();
    o.Set("datagramsDropped", Napi::Number::New(info.Env(), static_cast<double>(st.datagrams_dropped)));
    o.Set("fronts", Napi::Number::New(info.Env(), st.fronts));
    return o;
  }

  // While sessions exist the events function keeps the process alive.
  void Ref(const Napi::CallbackInfo& info) { tsfn_.Ref(info.Env()); }
  void Unref(const Napi::CallbackInfo& info) { tsfn_.Unref(info.Env()); }
  void Stop(const Napi::CallbackInfo&) { Shutdown(); }

  std::unique_ptr<tws::Engine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  napi_env env_ = nullptr;  // while our cleanup hook is registered
  bool started_ = false;
};

Napi::Value WrapContext(Napi::Env env, std::shared_ptr<tws::TlsContext> context, const std::string& error) {
  if (!context) return Napi::String::New(env, error);
  using Holder = std::shared_ptr<tws::TlsContext>;
  return Napi::External<Holder>::New(env, new Holder(std::move(context)), [](Napi::Env, Holder* h) { delete h; });
}

// tlsClientContext(caPem, insecure): an opaque context for adoptTls, or a
// string saying why the roots are unusable. Build it once and reuse it.
Napi::Value MakeTlsClientContext(const Napi::CallbackInfo& info) {
  std::string error;
  auto context = tws::TlsContext::client(info[0].ToString().Utf8Value(), info[1].ToBoolean().Value(), &error);
  return WrapContext(info.Env(), std::move(context), error);
}

// tlsServerContext(certPem, keyPem): an opaque context for frontTls, or why it cannot be made.
Napi::Value MakeTlsServerContext(const Napi::CallbackInfo& info) {
  std::string error;
  auto context = tws::TlsContext::server(info[0].ToString().Utf8Value(), info[1].ToString().Utf8Value(), &error);
  return WrapContext(info.Env(), std::move(context), error);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  exports.Set("NativeEngine", NativeEngine::Define(env));
  Napi::Array kinds = Napi::Array::New(env);
  for (uint32_t i = 0; i < sizeof kEventKinds / sizeof kEventKinds[0]; i++) kinds.Set(i, kEventKinds[i]);
  exports.Set("eventKinds", kinds);
  exports.Set("tlsClientContext", Napi::Function::New(env, MakeTlsClientContext, "tlsClientContext"));
  exports.Set("tlsServerContext", Napi::Function::New(env, MakeTlsServerContext, "tlsServerContext"));
  // Test-only entry points, kept apart so the production surface is the above.
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("decodeStream", Napi::Function::New(env, DecodeStream, "decodeStream"));
  testing.Set("aheadTarget", Napi::Function::New(env, AheadTargetOf, "aheadTarget"));
  exports.Set("testing", testing);
  return exports;
}

}  // namespace

NODE_API_MODULE(tws_native, Init)
