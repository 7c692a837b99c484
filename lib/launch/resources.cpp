#include "launch/resources.hpp"

#include <algorithm>
#include <charconv>

#include "base/error.hpp"

namespace ds::launch {
namespace {

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  while (true) {
    const size_t at = s.find(sep);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

void sort_unique(std::vector<int>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

std::string host_names(const Resources& pool) {
  std::string names;
  for (const HostSlots& h : pool.hosts) names += (names.empty() ? "" : ", ") + h.host;
  return names;
}

const HostSlots& find_host(const Resources& pool, const std::string& host, std::string_view flag) {
  for (const HostSlots& h : pool.hosts)
    if (h.host == host) return h;
  throw HostfileError(std::string(flag) + " names host " + in_quotes(host) + ", which is not " + pool.source +
                      " (hosts: " + host_names(pool) + "): use one of those names");
}

void check_slots(const HostSlots& have, const std::vector<int>& wanted, const Resources& pool, std::string_view flag) {
  for (int slot : wanted) {
    if (!std::binary_search(have.slots.begin(), have.slots.end(), slot))
      throw HostfileError(std::string(flag) + " asks for slot " + std::to_string(slot) + " on host " +
                          in_quotes(have.host) + ", which has slot" + (have.slots.size() == 1 ? " " : "s ") +
                          format_slots(have.slots) + " " + pool.source);
  }
}

}  // namespace

std::string format_slots(const std::vector<int>& slots) {
  std::string out;
  for (size_t i = 0; i < slots.size();) {
    size_t j = i;
    while (j + 1 < slots.size() && slots[j + 1] == slots[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(slots[i]);
    if (j > i) out += "-" + std::to_string(slots[j]);
    i = j + 1;
  }
  return out;
}

std::vector<NodeSpec> parse_node_specs(std::string_view spec, std::string_view flag) {
  const std::string what = std::string(flag) + " " + in_quotes(spec);
  if (spec.empty()) throw HostfileError(what + " is empty: write HOST[:SLOT[,SLOT...]][@HOST...], e.g. worker-0@worker-1:0,2");
  std::vector<NodeSpec> specs;
  for (std::string_view node : split(spec, '@')) {
    const std::vector<std::string_view> parts = split(node, ':');
    if (parts[0].empty())
      throw HostfileError(what + " has an empty host name: write HOST[:SLOT[,SLOT...]] between the '@'s, e.g. worker-0@worker-1:0,2");
    if (parts.size() > 2)
      throw HostfileError(what + " has more than one ':' in " + in_quotes(node) + ": write HOST:SLOT,SLOT, e.g. worker-1:0,2");
    NodeSpec parsed{std::string(parts[0]), {}};
    if (parts.size() == 2) {
      if (parts[1].empty())
        throw HostfileError(what + " has no slots after " + in_quotes(std::string(parts[0]) + ":") + ": list them (" +
                            std::string(parts[0]) + ":0,1) or give just " + in_quotes(parts[0]) + " for all its slots");
      for (std::string_view token : split(parts[1], ',')) {
        int slot = -1;
        const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), slot);
        if (token.empty() || ec != std::errc{} || end != token.data() + token.size() || slot < 0)
          throw HostfileError(what + ": slot " + in_quotes(token) + " of host " + in_quotes(parts[0]) +
                              " is not a slot number: slots are GPU indices 0, 1, 2, ...");
        parsed.slots.push_back(slot);
      }
    }
    // Lists for one host concatenate, as in DeepSpeed: "w0@w0:1" means slot 1 of w0 (a bare host
    // adds no slots), and the host means "all slots" only if no spec lists any.
    auto same = std::find_if(specs.begin(), specs.end(), [&](const NodeSpec& s) { return s.host == parsed.host; });
    if (same == specs.end()) {
      specs.push_back(std::move(parsed));
    } else {
      same->slots.insert(same->slots.end(), parsed.slots.begin(), parsed.slots.end());
    }
  }
  for (NodeSpec& s : specs) sort_unique(s.slots);
  return specs;
}

Resources pool_from_hostfile(const Hostfile& hostfile) {
  Resources pool;
  pool.source = "in hostfile " + hostfile.path;
  for (const HostfileEntry& entry : hostfile.hosts) {
    HostSlots h{entry.host, {}};
    for (int s = 0; s < entry.slots; ++s) h.slots.push_back(s);
    pool.hosts.push_back(std::move(h));
  }
  return pool;
}

Resources local_pool(int count, std::string source) {
  Resources pool;
  pool.source = std::move(source);
  HostSlots h{"localhost", {}};
  for (int s = 0; s < count; ++s) h.slots.push_back(s);
  pool.hosts.push_back(std::move(h));
  return pool;
}

Resources include_resources(const Resources& pool, std::string_view spec, std::string_view flag) {
  const std::vector<NodeSpec> specs = parse_node_specs(spec, flag);
  for (const NodeSpec& s : specs) check_slots(find_host(pool, s.host, flag), s.slots, pool, flag);
  Resources result;
  result.source = pool.source;
  for (const HostSlots& h : pool.hosts) {  // pool order, not the order of the spec
    for (const NodeSpec& s : specs) {
      if (s.host != h.host) continue;
      result.hosts.push_back({h.host, s.slots.empty() ? h.slots : s.slots});
    }
  }
  return result;
}

Resources exclude_resources(const Resources& pool, std::string_view spec, std::string_view flag) {
  const std::vector<NodeSpec> specs = parse_node_specs(spec, flag);
  for (const NodeSpec& s : specs) check_slots(find_host(pool, s.host, flag), s.slots, pool, flag);
  Resources result;
  result.source = pool.source;
  for (const HostSlots& h : pool.hosts) {
    HostSlots kept = h;
    for (const NodeSpec& s : specs) {
      if (s.host != h.host) continue;
      if (s.slots.empty()) {
        kept.slots.clear();
      } else {
        std::erase_if(kept.slots, [&](int slot) { return std::binary_search(s.slots.begin(), s.slots.end(), slot); });
      }
    }
    if (!kept.slots.empty()) result.hosts.push_back(std::move(kept));
  }
  return result;
}

Resources first_nodes(const Resources& pool, int count, std::string_view flag) {
  if (count > static_cast<int>(pool.hosts.size()))
    throw HostfileError(std::string(flag) + " asks for " + std::to_string(count) +
                        " nodes, but there " + (pool.hosts.size() == 1 ? "is 1" : "are " + std::to_string(pool.hosts.size())) +
                        " " + pool.source + ": give a hostfile (-H) listing enough hosts, or ask for fewer nodes");
  Resources result = pool;
  result.hosts.resize(static_cast<size_t>(count));
  return result;
}

Resources first_slots(const Resources& pool, int count, std::string_view flag) {
  Resources result;
  result.source = pool.source;
  for (const HostSlots& h : pool.hosts) {
    std::vector<int> wanted;
    for (int s = 0; s < count; ++s) wanted.push_back(s);
    if (count > static_cast<int>(h.slots.size()) || !std::includes(h.slots.begin(), h.slots.end(), wanted.begin(), wanted.end()))
      throw HostfileError(std::string(flag) + " asks for slots " + format_slots(wanted) +
                          " on host '" + h.host + "', which has slot" + (h.slots.size() == 1 ? " " : "s ") +
                          format_slots(h.slots) + " " + pool.source + ": ask for " + std::to_string(h.slots.size()) +
                          " or fewer");
    result.hosts.push_back({h.host, std::move(wanted)});
  }
  return result;
}

std::string include_from_visible_devices(std::string_view visible_devices) {
  for (std::string_view token : split(visible_devices, ',')) {
    int index = -1;
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), index);
    if (token.empty() || ec != std::errc{} || end != token.data() + token.size() || index < 0)
      throw UsageError("CUDA_VISIBLE_DEVICES=" + std::string(visible_devices) + " is not a list of GPU indices (" +
                       in_quotes(token) + "): dslaunch assigns GPUs by index, so unset it and select GPUs with " +
                       "--include localhost:0,1 instead");
  }
  return "localhost:" + std::string(visible_devices);
}

}  // namespace ds::launch
