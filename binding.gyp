{
  # node-gyp build of the native addon. CMakeLists.txt builds the same
  # sources for cmake-js; test/native/build.test.ts checks the lists match.
  # Headers come from the local Node install (npm's nodedir), never a download.
  # Hidden visibility and native/exports.map: the .node file exports N-API's
  # entry points only (scripts/compile-addon.js reads these lists too).
  "targets": [
    {
      "target_name": "tws_native",
      "sources": [
        "native/addon.cc",
        "native/core/mux.cc",
        "native/core/mux_data.cc",
        "native/io/dialer.cc",
        "native/io/engine.cc",
        "native/io/event_queue.cc",
        "native/io/listener.cc",
        "native/io/local_sockets.cc",
        "native/io/loop.cc",
        "native/io/stream_socket.cc",
        "native/io/tls_front.cc",
        "native/io/tls_wire.cc",
        "native/io/ws_session.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"
      ],
      "cflags_cc": ["-std=c++17", "-O2", "-fno-exceptions", "-Wall", "-Wextra", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "ldflags": ["-Wl,--version-script=<(module_root_dir)/native/exports.map"],
      "libraries": ["-lpthread"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
