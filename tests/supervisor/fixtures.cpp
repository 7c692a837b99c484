#include "supervisor/fixtures.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace ds::test::supervisor {

std::string helper_bin() {
#ifdef SUPERVISOR_HELPER_BIN
  return SUPERVISOR_HELPER_BIN;
#else
  return "supervisor_helper";
#endif
}

std::string write_script(const TempDir& dir, const std::string& name, const std::string& body) {
  dir.write(name, "#!/bin/sh\n" + body);
  ::chmod(dir.file(name).c_str(), 0755);
  return dir.file(name);
}

std::map<std::string, std::string> current_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

launch::WorkerFactory same_program(int ranks, std::vector<std::string> argv) {
  return [ranks, argv](int attempt) {
    std::vector<launch::WorkerSpec> specs;
    for (int r = 0; r < ranks; ++r) {
      launch::WorkerSpec spec;
      spec.global_rank = r;
      spec.local_rank = r;
      spec.argv = argv;
      spec.env = current_env();
      spec.env["RANK"] = std::to_string(r);
      spec.env["LOCAL_RANK"] = std::to_string(r);
      spec.env["WORLD_SIZE"] = std::to_string(ranks);
      spec.env["TORCHELASTIC_RESTART_COUNT"] = std::to_string(attempt);
      specs.push_back(std::move(spec));
    }
    return specs;
  };
}

launch::SuperviseOptions fast_options() {
  launch::SuperviseOptions options;
  options.kill_grace = 2000ms;
  options.monitor_interval = 100ms;
  options.host = "testhost";
  options.run_id = "testrun";
  return options;
}

CapturedConsole::CapturedConsole(const TempDir& dir)
    : m_out_path(dir.file("console.out")), m_err_path(dir.file("console.err")) {
  m_out = ::open(m_out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  m_err = ::open(m_err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (m_out < 0 || m_err < 0) throw std::runtime_error("cannot create the console files");
}

CapturedConsole::~CapturedConsole() {
  ::close(m_out);
  ::close(m_err);
}

std::string CapturedConsole::out() const { return slurp(m_out_path); }
std::string CapturedConsole::err() const { return slurp(m_err_path); }

JobRun run_captured(const TempDir& dir, const launch::WorkerFactory& factory, const launch::SuperviseOptions& supervise,
                    const launch::OutputOptions& output) {
  CapturedConsole console(dir);
  JobRun run;
  const auto start = std::chrono::steady_clock::now();
  run.outcome = launch::run_job(factory, output, supervise, console.fds());
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.out = console.out();
  run.err = console.err();
  return run;
}


Background::Background(const std::vector<std::string>& argv, const TempDir& dir)
    : m_out_path(dir.file("background.out")), m_err_path(dir.file("background.err")) {
  std::vector<char*> c_argv;
  for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  int out = ::open(m_out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  int err = ::open(m_err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  m_pid = ::fork();
  if (m_pid == 0) {
    ::setpgid(0, 0);
    // A test runner started in the background may ignore SIGINT; the program under test must not
    // inherit that (ignored signals survive exec).
    for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(signo, SIG_DFL);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(c_argv[0], c_argv.data());
    ::_exit(127);
  }
  ::setpgid(m_pid, m_pid);
  ::close(out);
  ::close(err);
  if (m_pid < 0) throw std::runtime_error("fork failed");
}

Background::~Background() {
  if (!m_reaped) {
    ::kill(-m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
  }
}

void Background::signal(int signo) const { ::kill(m_pid, signo); }

std::optional<int> Background::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
      m_reaped = true;
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

std::string Background::err() const { return slurp(m_err_path); }

std::vector<pid_t> children_of_this_process() {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto paren = text.rfind(')');
    if (paren == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(text.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == ::getpid())
      out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

}  // namespace ds::test::supervisor
