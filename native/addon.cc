// The N-API binding of tws-native: the only file that includes napi.h.
//
// Today it exposes the native core (ws_frame.h, tws2.h) to JavaScript so the
// TypeScript codec and the C++ parser can be tested against each other
// (test/native/differential.test.ts). The event-loop-free data plane will be
// added behind this same file; the engine boundary it will implement is
// src/engine/types.ts (see docs/architecture.md).
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/tws2.h"
#include "core/ws_frame.h"

namespace {

// Collects what the core decodes from one byte stream, merging the pieces of
// each DATA body, for decodeStream().
struct Collector {
  struct Item {
    int kind;  // 0 data, 1 other frame, 2 control
    uint8_t type;
    uint32_t stream;
    std::string bytes;
  };
  std::vector<Item> items;
  bool wants_stop() const { return false; }
  void on_data(uint32_t stream, uint8_t* p, size_t n) {
    if (!items.empty() && items.back().kind == 0 && items.back().stream == stream && !data_closed_) {
      items.back().bytes.append(reinterpret_cast<char*>(p), n);
      return;
    }
    data_closed_ = false;
    items.push_back({0, tws::tws2::kData, stream, std::string(reinterpret_cast<char*>(p), n)});
  }
  void on_data_end(uint32_t) { data_closed_ = true; }
  void on_frame(uint8_t type, uint32_t stream, uint8_t* body, size_t n) {
    data_closed_ = true;
    items.push_back({1, type, stream, std::string(reinterpret_cast<char*>(body), n)});
  }
  void on_control(uint8_t op, uint8_t* p, size_t n) {
    data_closed_ = true;
    items.push_back({2, op, 0, std::string(reinterpret_cast<char*>(p), n)});
  }

 private:
  bool data_closed_ = true;
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  exports.Set("decodeStream", Napi::Function::New(env, DecodeStream, "decodeStream"));
  // What this build of the addon can do; the loader reports it.
  exports.Set("dataPlane", Napi::Boolean::New(env, false));
  return exports;
}

}  // namespace

NODE_API_MODULE(tws_native, Init)
