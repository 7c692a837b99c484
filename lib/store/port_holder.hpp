// Who holds a TCP port: turns "address already in use" into "held by pid 1234 (python3)".
// Linux only (/proc); used on the error path of StoreServer, never on a hot path.
#pragma once

#include <cstdint>
#include <string>

namespace ds::store {

// Describes the process listening on TCP port `port` (IPv4 or IPv6, any address):
//   "held by pid 1234 (python3)"                 the socket's owner is visible in /proc/<pid>/fd
//   "held by another user's process (uid 1001)"   the socket exists but its owner's fds are unreadable
//   ""                                            no listening socket on that port was found
// Blocks briefly (reads /proc/net/tcp{,6} and every readable /proc/<pid>/fd); never throws.
std::string describe_port_holder(uint16_t port);

}  // namespace ds::store
