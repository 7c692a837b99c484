#include "launch/program.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "base/error.hpp"

namespace ds::launch {
namespace {

namespace fs = std::filesystem;

// execvp's path when PATH is unset.
constexpr const char* k_default_path = "/usr/local/bin:/usr/bin:/bin";

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

std::string join(const std::string& cwd, const std::string& path) {
  if (!path.empty() && path.front() == '/') return path;
  return (fs::path(cwd) / path).lexically_normal().string();
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_executable_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string path_of(const std::map<std::string, std::string>& env) {
  const auto it = env.find("PATH");
  return it == env.end() ? k_default_path : it->second;
}

// Checks a program named with a '/' (or a .py script): exists, is a file, and, for `executable`,
// may be executed.
enum class NeedsExec { yes, no };
void check_file(const std::string& program, const std::string& cwd, NeedsExec needs_exec, std::string_view kind) {
  const std::string full = join(cwd, program);
  struct stat info {};
  if (::stat(full.c_str(), &info) != 0) {
    const std::string where = program.front() == '/' ? "" : " (looked in " + cwd + ")";
    throw ResourceError("program " + in_quotes(program) + " not found: no such file" + where + ": check the path");
  }
  if (S_ISDIR(info.st_mode)) throw ResourceError("program " + in_quotes(program) + " is a directory, not " + std::string(kind));
  if (!S_ISREG(info.st_mode)) throw ResourceError("program " + in_quotes(program) + " is not a regular file: give " + std::string(kind));
  if (needs_exec == NeedsExec::yes && ::access(full.c_str(), X_OK) != 0)
    throw ResourceError("program " + in_quotes(program) + " is not executable: chmod +x it, or give a Python script named *.py");
}

void check_executable(const std::string& program, const std::map<std::string, std::string>& env, const std::string& cwd) {
  if (program.find('/') != std::string::npos) {
    check_file(program, cwd, NeedsExec::yes, "a program");
    return;
  }
  if (find_executable(program, path_of(env), cwd)) return;
  std::error_code ec;
  if (fs::is_regular_file(join(cwd, program), ec))
    throw ResourceError("program " + in_quotes(program) + " is not in PATH: to run the file in " + cwd + ", write ./" + program);
  throw ResourceError("program " + in_quotes(program) + " not found in PATH: give its path, or install it");
}

std::string interpreter(const std::map<std::string, std::string>& env, const std::string& program,
                        const std::string& cwd) {
  const auto it = env.find("DSLAUNCH_PYTHON");
  const bool from_env = it != env.end() && !it->second.empty();
  const std::string python = from_env ? it->second : "python3";
  if (!find_executable(python, path_of(env), cwd)) {
    const std::string fix = from_env ? "set DSLAUNCH_PYTHON to an interpreter that exists"
                                     : "install Python 3, or set DSLAUNCH_PYTHON to the interpreter's path";
    throw ResourceError("Python interpreter " + in_quotes(python) + " (for " + program + ") not found" +
                        (python.find('/') == std::string::npos ? " in PATH" : "") + ": " + fix);
  }
  return python;
}

}  // namespace

std::vector<std::string> ProgramCommand::argv(int local_rank) const {
  std::vector<std::string> out = prefix;
  if (local_rank_arg == LocalRankArg::pass) out.push_back("--local_rank=" + std::to_string(local_rank));
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

std::optional<std::string> find_executable(const std::string& name, const std::string& path_var, const std::string& cwd) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    const std::string full = join(cwd, name);
    return is_executable_file(full) ? std::optional<std::string>(full) : std::nullopt;
  }
  size_t begin = 0;
  while (begin <= path_var.size()) {
    size_t end = path_var.find(':', begin);
    if (end == std::string::npos) end = path_var.size();
    const std::string dir = path_var.substr(begin, end - begin);
    const std::string full = join(cwd, (dir.empty() ? "." : dir) + "/" + name);
    if (is_executable_file(full)) return full;
    begin = end + 1;
  }
  return std::nullopt;
}

ProgramCommand resolve_program(const LaunchOptions& options, const std::map<std::string, std::string>& env,
                               const std::string& cwd) {
  const std::string& program = options.program;
  ProgramCommand command;
  command.args = options.program_args;
  switch (options.program_mode) {
    case ProgramMode::module:
      command.prefix = {interpreter(env, program, cwd), "-u", "-m", program};
      command.local_rank_arg = options.local_rank_arg;
      break;
    case ProgramMode::no_python:
      check_executable(program, env, cwd);
      command.prefix = {program};
      command.local_rank_arg = options.local_rank_arg;
      break;
    case ProgramMode::automatic:
      if (ends_with(program, ".py")) {
        check_file(program, cwd, NeedsExec::no, "a Python script");
        command.prefix = {interpreter(env, program, cwd), "-u", program};
        command.local_rank_arg = options.local_rank_arg;
      } else {
        check_executable(program, env, cwd);
        command.prefix = {program};
        command.local_rank_arg = LocalRankArg::omit;
      }
      break;
  }
  return command;
}

std::optional<std::string> find_config_path(const std::vector<std::string>& args, const std::string& cwd) {
  std::optional<std::string> from_deepspeed, from_config;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_next = i + 1 < args.size();
    if (a == "--deepspeed_config" && has_next) {
      from_config = args[++i];
    } else if (a.rfind("--deepspeed_config=", 0) == 0) {
      from_config = a.substr(std::string_view("--deepspeed_config=").size());
    } else if (a == "--deepspeed" && has_next && !args[i + 1].empty() && args[i + 1].front() != '-') {
      from_deepspeed = args[++i];
    } else if (a.rfind("--deepspeed=", 0) == 0) {
      from_deepspeed = a.substr(std::string_view("--deepspeed=").size());
    }
  }
  if (from_config && from_config->empty()) from_config.reset();
  if (from_deepspeed && from_deepspeed->empty()) from_deepspeed.reset();
  if (from_config && from_deepspeed && join(cwd, *from_config) != join(cwd, *from_deepspeed))
    throw UsageError("the program's arguments name two DeepSpeed configs, --deepspeed " + *from_deepspeed +
                     " and --deepspeed_config " + *from_config + ": give one");
  if (from_config) return join(cwd, *from_config);
  if (from_deepspeed) return join(cwd, *from_deepspeed);
  return std::nullopt;
}

}  // namespace ds::launch
