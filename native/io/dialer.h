// Connecting a stream's target from the I/O thread (the server's fast path:
// JavaScript approved the target and resolved it to an IP literal, so no DNS
// happens here). Non-blocking: start_connect() begins, epoll says when the
// socket is writable, connect_result() tells how it went. [I/O thread only]
#pragma once

#include <cstdint>
#include <string>

#include "fd.h"

namespace tws {

// A socket connecting to `address` (an IPv4 or IPv6 literal) and `port`;
// an empty one, with *why set, when it could not even start.
UniqueFd start_connect(const std::string& address, uint16_t port, std::string* why);

// How the connect went once epoll reported `events` for its socket: 0
// connected, an errno value (failed), or -1 (not finished yet).
int connect_result(int fd, uint32_t events);

}  // namespace tws
