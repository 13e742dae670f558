// Which OPEN targets the server's engine may dial itself when JavaScript
// granted the session "answer ahead" (no allow-list): only an IP literal
// already spelled exactly as JavaScript would connect to it (src/util/ip.ts
// ipText after parseIp), so a decision taken here is the one JavaScript
// would take. Anything else (names, other spellings, zone ids, the
// addresses JavaScript refuses or rewrites) goes to JavaScript as before.
// Pure: no state, no I/O. [any thread]
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace tws {

struct AheadTarget {
  std::string host;  // the literal to connect to: dotted quad, or IPv6 without brackets
  uint16_t port = 0;
};

namespace ahead_detail {

// "1".."65535" without a leading zero; 0 otherwise.
inline uint16_t port_of(const std::string& s, size_t from) {
  const size_t n = s.size() - from;
  if (n == 0 || n > 5 || s[from] == '0') return 0;
  uint32_t v = 0;
  for (size_t i = from; i < s.size(); i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + static_cast<uint32_t>(s[i] - '0');
  }
  return v <= 65535 ? static_cast<uint16_t>(v) : 0;
}

// Four decimal parts 0-255, no leading zeros, not 0.0.0.0 (JavaScript refuses it).
inline bool canonical_v4(const std::string& h) {
  int parts = 0;
  size_t i = 0;
  bool any_nonzero = false;
  while (true) {
    const size_t start = i;
    uint32_t v = 0;
    while (i < h.size() && h[i] >= '0' && h[i] <= '9' && i - start < 3) v = v * 10 + static_cast<uint32_t>(h[i++] - '0');
    const size_t len = i - start;
    if (len == 0 || v > 255 || (len > 1 && h[start] == '0')) return false;
    any_nonzero = any_nonzero || v != 0;
    if (++parts == 4) return i == h.size() && any_nonzero;
    if (i >= h.size() || h[i] != '.') return false;
    i++;
  }
}

// Equal to inet_ntop's text of itself (lower case, shortest, RFC 5952, as
// JavaScript formats it), and outside ::/96 and ::ffff:0:0/96, which
// JavaScript refuses or turns into IPv4 (only ::1 is taken from there).
inline bool canonical_v6(const std::string& h) {
  if (h.empty() || h.size() >= INET6_ADDRSTRLEN) return false;
  if (h == "::1") return true;
  in6_addr a{};
  if (::inet_pton(AF_INET6, h.c_str(), &a) != 1) return false;
  const uint8_t* b = a.s6_addr;
  bool low96 = true;
  for (int i = 0; i < 10; i++) low96 = low96 && b[i] == 0;
  if (low96 && ((b[10] == 0 && b[11] == 0) || (b[10] == 0xff && b[11] == 0xff))) return false;
  char text[INET6_ADDRSTRLEN];
  if (!::inet_ntop(AF_INET6, &a, text, sizeof text)) return false;
  return h == text && std::strchr(text, '.') == nullptr;
}

}  // namespace ahead_detail

// `target` ("a.b.c.d:port" or "[v6]:port") as the engine may dial it, or false.
inline bool parse_ahead_target(const std::string& target, AheadTarget* out) {
  if (target.empty() || target.size() > 64) return false;
  if (target[0] == '[') {
    const size_t close = target.find(']');
    if (close == std::string::npos || close + 1 >= target.size() || target[close + 1] != ':') return false;
    std::string host = target.substr(1, close - 1);
    const uint16_t port = ahead_detail::port_of(target, close + 2);
    if (port == 0 || !ahead_detail::canonical_v6(host)) return false;
    out->host = std::move(host);
    out->port = port;
    return true;
  }
  const size_t colon = target.find(':');
  if (colon == std::string::npos || target.find(':', colon + 1) != std::string::npos) return false;
  std::string host = target.substr(0, colon);
  const uint16_t port = ahead_detail::port_of(target, colon + 1);
  if (port == 0 || !ahead_detail::canonical_v4(host)) return false;
  out->host = std::move(host);
  out->port = port;
  return true;
}

}  // namespace tws
