// Test support: run a real program, with a deadline, and capture what it did. Used by every test
// that drives dslaunch or dsworker as a user would (STYLE.md: multi-process behaviour is tested
// through the real binaries).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ds::test {

struct RunResult {
  int exit_code = -1;         // valid when signal == 0
  int signal = 0;             // the signal that ended the process, 0 if it exited
  bool timed_out = false;     // the deadline passed; the process group was SIGKILLed
  std::string out;            // everything written to stdout
  std::string err;            // everything written to stderr
  double seconds = 0;         // wall time until exit
  pid_t pid = -1;
};

struct RunOptions {
  std::chrono::milliseconds timeout{60'000};
  std::map<std::string, std::string> set_env;     // added to (or replacing in) the inherited env
  std::vector<std::string> unset_env;              // removed from the inherited env
  std::optional<std::string> cwd;
  std::optional<std::string> stdin_data;           // written to stdin, then stdin is closed
};

// Runs argv[0] (searched in PATH when it has no '/') with argv. Never hangs: on timeout the child's
// process group is killed and timed_out is set.
RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// A fresh empty directory under $TMPDIR (or /tmp), removed with everything in it by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return m_path; }
  std::string file(const std::string& name) const { return m_path + "/" + name; }
  void write(const std::string& name, const std::string& content) const;  // creates parent dirs
  std::string read(const std::string& name) const;

 private:
  std::string m_path;
};

// True if a process with this pid exists (and is not a zombie).
bool process_alive(pid_t pid);

// The whole file ("" when it does not exist).
std::string slurp(const std::string& path);
// Waits until `path` exists and holds a complete line; false after `timeout`.
bool wait_for_line(const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Waits until the file at `path` contains `text`; false after `timeout`.
bool wait_for_text(const std::string& path, const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(30));
// The first number in the file (a pid a test program wrote); throws std::runtime_error when none.
pid_t read_pid(const std::string& path);
// Waits until `pid` is gone (a zombie counts as gone); false after `timeout`.
bool wait_gone(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Paths of the binaries under test (compile definitions set by tests/CMakeLists.txt).
std::string dslaunch_bin();
std::string dsworker_bin();
std::string source_dir();

}  // namespace ds::test
