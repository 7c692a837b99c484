// Which keys of the store belong to native dslaunch jobs and are therefore protected by the job
// token: the one table that the server, the table's counters, the client's messages and
// docs/store.md ("What is protected") all follow.
//
// A key is protected when it starts with one of the prefixes below. With a token, protected keys
// are readable, writable and listable only by connections that proved it (store_server.hpp);
// every other key stays open, as in torch's store, because torch's clients cannot authenticate.
// Torch's own keys never collide with these prefixes: its client sends "/<key>" (a leading
// slash), its process groups "default_pg/<n>/...", its init counter "init/".
//
// A native component that puts something in the store must put it under one of these prefixes;
// a new namespace is added here (and to docs/store.md), nowhere else.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace ds::store {

struct ProtectedNamespace {
  std::string_view prefix;  // ends with '/'
  std::string_view holds;   // what lives there, for docs and messages
};

inline constexpr std::array<ProtectedNamespace, 2> k_protected_namespaces{{
    {"dslaunch/", "the launcher's control plane: run id, world size, plan, DeepSpeed config"},
    {"dsworker/",
     "native workers' rendezvous (dsworker/<run>/attempt_<n>/...): the start barrier, Gloo peer addresses, "
     "closed-communicator marks, failure reports, and the NCCL unique id"},
}};

inline constexpr bool is_protected_key(std::string_view key) {
  for (const auto& ns : k_protected_namespaces)
    if (key.substr(0, ns.prefix.size()) == ns.prefix) return true;
  return false;
}

// "'dslaunch/', 'dsworker/'": for messages.
inline std::string protected_prefixes_text() {
  std::string out;
  for (const auto& ns : k_protected_namespaces) {
    if (!out.empty()) out += ", ";
    out += "'";
    out += ns.prefix;
    out += "'";
  }
  return out;
}

}  // namespace ds::store
