#include "launch/host.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <filesystem>

#include "launch/cores.hpp"

extern char** environ;

namespace ds::launch {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string short_name(const std::string& name) { return name.substr(0, name.find('.')); }

std::vector<std::string> interface_addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr) continue;
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, text, sizeof text);
    } else {
      continue;
    }
    out.emplace_back(text);
  }
  freeifaddrs(list);
  return out;
}

std::vector<int> affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  if (cpus.empty()) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (int cpu = 0; cpu < std::max(1L, n); ++cpu) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace

HostFacts HostFacts::probe() {
  HostFacts facts;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) facts.env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  std::error_code ec;
  facts.cwd = std::filesystem::current_path(ec).string();
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) == 0) facts.hostname = name;
  facts.addresses = interface_addresses();
  facts.gpus = count_gpus(facts.env);
  facts.allowed_cpus = affinity_cpus();
  facts.physical_cores = ::ds::launch::physical_cores(facts.allowed_cpus);
  facts.pid = static_cast<int>(getpid());
  facts.uid = static_cast<unsigned>(getuid());
  return facts;
}

bool is_local_host(const std::string& host, const HostFacts& facts) {
  const std::string h = lower(host);
  if (h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0) return true;
  if (!facts.hostname.empty()) {
    const std::string me = lower(facts.hostname);
    if (h == me || short_name(h) == me || h == short_name(me)) return true;
  }
  for (const std::string& address : facts.addresses)
    if (h == lower(address)) return true;
  return false;
}

}  // namespace ds::launch
