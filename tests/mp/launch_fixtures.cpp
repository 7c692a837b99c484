#include "mp/launch_fixtures.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/skip.hpp"

extern char** environ;

namespace ds::test::mp {

std::string env_dump_bin() {
#ifdef ENV_DUMP_BIN
  return ENV_DUMP_BIN;
#else
  return "env_dump";
#endif
}

std::map<std::string, std::string> hermetic_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = kv.substr(0, eq);
    const bool ours = name.rfind("DSLAUNCH_", 0) == 0 || name.rfind("ENV_DUMP_", 0) == 0 ||
                      name.rfind("TORCHELASTIC_", 0) == 0;
    const bool launcher_given = name == "RANK" || name == "LOCAL_RANK" || name == "WORLD_SIZE" ||
                                name == "LOCAL_WORLD_SIZE" || name == "MASTER_ADDR" || name == "MASTER_PORT" ||
                                name == "CUDA_VISIBLE_DEVICES" || name == "OMP_NUM_THREADS";
    if (!ours && !launcher_given) env[name] = kv.substr(eq + 1);
  }
  env["DSLAUNCH_GPU_COUNT"] = "0";
  return env;
}

Sandbox::Sandbox() {
  // Every test here launches without -H: a hostfile at dslaunch's default path would turn the job
  // into a multi-node one. Nothing has started yet, so the whole process may end here (Skipped).
  if (std::filesystem::exists("/job/hostfile")) {
    std::filesystem::remove_all(dir.path());
    ds::test::skip_process("/job/hostfile exists on this machine: dslaunch reads it by default, and the mp tests "
                           "launch without -H on one node; run them where it does not exist");
  }
  std::filesystem::create_directories(dumps());
}

std::map<std::string, std::string> Sandbox::env_with(const std::map<std::string, std::string>& env) const {
  std::map<std::string, std::string> all = hermetic_env();
  all["ENV_DUMP_DIR"] = dumps();
  for (const auto& [k, v] : env) all[k] = v;
  return all;
}

RunResult Sandbox::run(std::vector<std::string> args, const std::map<std::string, std::string>& env,
                       std::chrono::milliseconds timeout) const {
  RunOptions options;
  options.cwd = dir.path();
  options.timeout = timeout;
  // run() adds set_env to the inherited environment: unset everything hermetic_env() leaves out.
  const std::map<std::string, std::string> wanted = env_with(env);
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string name = kv.substr(0, kv.find('='));
    if (!wanted.count(name)) options.unset_env.push_back(name);
  }
  options.set_env = wanted;
  args.insert(args.begin(), dslaunch_bin());
  return ds::test::run(args, options);
}

std::string Sandbox::script(const std::string& name, const std::string& body) const {
  dir.write(name, "#!/bin/sh\n" + body);
  ::chmod(dir.file(name).c_str(), 0755);
  return dir.file(name);
}

nlohmann::json Sandbox::dump(int rank) const {
  const std::string path = dumps() + "/rank" + std::to_string(rank) + ".json";
  INFO("env_dump's file " << path);
  REQUIRE(std::filesystem::exists(path));
  return nlohmann::json::parse(slurp(path));
}

std::vector<std::string> Sandbox::dump_files() const {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dumps())) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

Background::Background(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       const TempDir& dir, const std::string& name)
    : m_out_path(dir.file(name + ".out")), m_err_path(dir.file(name + ".err")) {
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> c_argv, c_env;
  for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  for (const auto& e : env_strings) c_env.push_back(const_cast<char*>(e.c_str()));
  c_env.push_back(nullptr);
  const int out = ::open(m_out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  const int err = ::open(m_err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || err < 0 || in < 0) throw std::runtime_error("Background: cannot open its files");
  m_pid = ::fork();
  if (m_pid == 0) {
    ::setpgid(0, 0);
    // A test runner started in the background may ignore SIGINT; dslaunch must not inherit that
    // (ignored signals survive exec, and dslaunch keeps ignoring what was ignored: by design).
    for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(signo, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::chdir(dir.path().c_str());
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  ::close(in);
  ::close(out);
  ::close(err);
  if (m_pid < 0) throw std::runtime_error("Background: fork failed");
  ::setpgid(m_pid, m_pid);
}

Background::~Background() {
  if (!m_reaped) {
    ::kill(-m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
  }
  for (pid_t pid : m_others)
    if (process_alive(pid)) ::kill(pid, SIGKILL);
}

void Background::signal(int signo) const { ::kill(m_pid, signo); }

std::optional<int> Background::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
      m_reaped = true;
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

std::string Background::out() const { return slurp(m_out_path); }
std::string Background::err() const { return slurp(m_err_path); }

int shell_status(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}


std::string unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::vector<std::string> argv_of(const nlohmann::json& dump) {
  std::vector<std::string> argv;
  for (const auto& h : dump.at("argv_hex")) argv.push_back(unhex(h.get<std::string>()));
  return argv;
}

std::vector<std::string> cmdline_of(pid_t pid) {
  const std::string text = slurp("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> argv;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\0', start);
    argv.push_back(text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return argv;
}

Listener::Listener(uint16_t port) {
  m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (m_fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(m_fd, 4) != 0)
    throw std::runtime_error(std::string("bind/listen failed: ") + std::strerror(errno));
  socklen_t len = sizeof addr;
  ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  m_port = ntohs(addr.sin_port);
}

Listener::~Listener() { ::close(m_fd); }

namespace {

// "0100007F" (little-endian hex of /proc/net/tcp) → "127.0.0.1"; 32 hex digits → IPv6 text.
std::string proc_net_address(const std::string& hex) {
  char text[INET6_ADDRSTRLEN] = {};
  if (hex.size() == 8) {
    in_addr a{};
    a.s_addr = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
    ::inet_ntop(AF_INET, &a, text, sizeof text);
  } else {
    in6_addr a{};
    for (int word = 0; word < 4; ++word) {
      const uint32_t w = static_cast<uint32_t>(std::stoul(hex.substr(static_cast<size_t>(word) * 8, 8), nullptr, 16));
      std::memcpy(reinterpret_cast<char*>(&a) + word * 4, &w, 4);
    }
    ::inet_ntop(AF_INET6, &a, text, sizeof text);
  }
  return text;
}

}  // namespace

std::vector<std::string> listening_addresses(uint16_t port) {
  std::vector<std::string> out;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream lines(slurp(file));
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const auto colon = local.find(':');
      if (colon == std::string::npos || state != "0A") continue;  // 0A: LISTEN
      if (std::stoul(local.substr(colon + 1), nullptr, 16) != port) continue;
      out.push_back(proc_net_address(local.substr(0, colon)));
    }
  }
  return out;
}

std::vector<std::string> non_loopback_ipv4() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    out.push_back(text);
  }
  ::freeifaddrs(list);
  return out;
}

bool can_connect(const std::string& addr, uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 1000) == 1) {
      int error = 0;
      socklen_t len = sizeof error;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
      ok = error == 0;
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace ds::test::mp
