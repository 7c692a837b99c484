// How PROGRAM becomes each worker's argv, and the checks that it can be started at all.
//
//   PROG.py             python3 -u PROG.py --local_rank=N ARGS   DeepSpeed's convention
//   --module PROG       python3 -u -m PROG --local_rank=N ARGS
//   --no_python PROG    PROG --local_rank=N ARGS                 DeepSpeed's --no_python
//   PROG (not .py)      PROG ARGS                                torchrun's convention: a native
//                                                                program reads LOCAL_RANK from the
//                                                                environment, and an unknown
//                                                                --local_rank flag would break it
// --no_local_rank drops --local_rank=N. The interpreter is $DSLAUNCH_PYTHON, else python3.
// ARGS are passed byte for byte: no shell is involved anywhere.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "launch/options.hpp"

namespace ds::launch {

struct ProgramCommand {
  std::vector<std::string> prefix;  // argv up to --local_rank: {"python3","-u","train.py"}, {"./a.out"}
  LocalRankArg local_rank_arg = LocalRankArg::omit;
  std::vector<std::string> args;    // the user's arguments, untouched

  // The argv of the worker with this local rank: prefix, [--local_rank=N], args.
  std::vector<std::string> argv(int local_rank) const;
};

// Builds the command and checks that it can start: a .py script must be a file, an executable must
// be found (in PATH when it has no '/') and be executable, and the interpreter of a Python program
// must be found. Relative paths are taken from `cwd`, PATH from `env`.
// Throws ResourceError naming the program (or interpreter) and the fix.
ProgramCommand resolve_program(const LaunchOptions& options, const std::map<std::string, std::string>& env,
                               const std::string& cwd);

// execvp's lookup: a name with '/' is a path (relative to cwd); otherwise the first executable
// regular file named `name` in the directories of `path_var` (an empty entry is cwd).
std::optional<std::string> find_executable(const std::string& name, const std::string& path_var, const std::string& cwd);

// The DeepSpeed config named in the program's arguments: --deepspeed_config X, --deepspeed_config=X,
// --deepspeed X (HF Trainer's flag; taken only when X does not start with '-', since DeepSpeed's own
// --deepspeed is a switch), --deepspeed=X. Returned absolute (joined to cwd), not checked for
// existence. The last occurrence of a flag wins; throws UsageError when --deepspeed and
// --deepspeed_config name different files.
std::optional<std::string> find_config_path(const std::vector<std::string>& args, const std::string& cwd);

}  // namespace ds::launch
