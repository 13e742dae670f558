// Node's names for errno values (ECONNRESET, …), so a line reads the same on
// both engines: refused streams, local errors, lost connections. Pure. [any thread]
#pragma once

#include <errno.h>

#include <string>

namespace tws {

inline std::string errno_name(int err) {
  switch (err) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ECONNABORTED: return "ECONNABORTED";
    case EPIPE: return "EPIPE";
    case ENOTCONN: return "ENOTCONN";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ENETDOWN: return "ENETDOWN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case ENOSPC: return "ENOSPC";
    case EPROTO: return "EPROTO";
    case EBADF: return "EBADF";
    default: return "errno " + std::to_string(err);
  }
}

}  // namespace tws
