// What argv each rank runs with: DeepSpeed's conventions for .py programs, --module, --no_python and
// --no_local_rank, and the user's arguments reaching the program byte for byte (no shell involved).
#include <catch2/catch.hpp>

#include <filesystem>

#include "mp/launch_fixtures.hpp"
#include "support/skip.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;

// Arguments a shell would mangle: quotes, spaces, $, backticks, globs, newlines, UTF-8, bytes that
// are not UTF-8, an empty string, and flags that look like dslaunch's or like --local_rank.
const std::vector<std::string> k_tricky_args = {
    "a b",           "'single quoted'", "\"double quoted\"", "$HOME",  "${PATH}", "`id`",       "$(id)",
    "line1\nline2",  "tab\there",       "héllo ✓",           "",       "*",       "; rm -rf /", "\\back\\slash",
    "\xff\xfe\x80",  "--local_rank=7",  "--num_gpus",        "8",      "-m",      "--",         " ",
};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Runs dslaunch with 2 CPU ranks and `flags`, then returns each rank's exact argv.
std::vector<std::vector<std::string>> argv_of_ranks(const Sandbox& box, const std::vector<std::string>& flags,
                                                    const std::map<std::string, std::string>& env = {}) {
  const RunResult r = box.run(concat({"--num_gpus=2", "--master_port=0"}, flags), env);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(box.dump_files().size() == 2);
  return {argv_of(box.dump(0)), argv_of(box.dump(1))};
}

}  // namespace

TEST_CASE("a native program gets exactly the user's arguments, byte for byte, and no --local_rank") {
  Sandbox box;
  const auto argv = argv_of_ranks(box, concat({env_dump_bin()}, k_tricky_args));
  for (int rank = 0; rank < 2; ++rank) {
    INFO("rank " << rank);
    CHECK(argv[rank] == concat({env_dump_bin()}, k_tricky_args));
  }
}

TEST_CASE("a .py program runs as PYTHON -u PROG --local_rank=N ARGS, and --no_local_rank drops the flag") {
  // DSLAUNCH_PYTHON names the interpreter; env_dump stands in for it and records its argv exactly.
  Sandbox box;
  box.dir.write("train.py", "raise SystemExit('never run: the interpreter is env_dump')\n");
  const std::map<std::string, std::string> python = {{"DSLAUNCH_PYTHON", env_dump_bin()}};

  SECTION("default") {
    const auto argv = argv_of_ranks(box, concat({"train.py"}, k_tricky_args), python);
    for (int rank = 0; rank < 2; ++rank)
      CHECK(argv[rank] == concat({env_dump_bin(), "-u", "train.py", "--local_rank=" + std::to_string(rank)}, k_tricky_args));
  }
  SECTION("--no_local_rank") {
    const auto argv = argv_of_ranks(box, concat({"--no_local_rank", "train.py"}, k_tricky_args), python);
    for (int rank = 0; rank < 2; ++rank) CHECK(argv[rank] == concat({env_dump_bin(), "-u", "train.py"}, k_tricky_args));
  }
  SECTION("--module") {
    const auto argv = argv_of_ranks(box, concat({"--module", "pkg.train"}, k_tricky_args), python);
    for (int rank = 0; rank < 2; ++rank)
      CHECK(argv[rank] ==
            concat({env_dump_bin(), "-u", "-m", "pkg.train", "--local_rank=" + std::to_string(rank)}, k_tricky_args));
  }
  SECTION("--module --no_local_rank") {
    const auto argv = argv_of_ranks(box, concat({"--module", "--no_local_rank", "pkg.train"}, k_tricky_args), python);
    for (int rank = 0; rank < 2; ++rank)
      CHECK(argv[rank] == concat({env_dump_bin(), "-u", "-m", "pkg.train"}, k_tricky_args));
  }
}

TEST_CASE("with --no_python, dslaunch runs the program itself with --local_rank=N, and without it under --no_local_rank") {
  Sandbox box;
  SECTION("--no_python") {
    const auto argv = argv_of_ranks(box, concat({"--no_python", env_dump_bin()}, k_tricky_args));
    for (int rank = 0; rank < 2; ++rank)
      CHECK(argv[rank] == concat({env_dump_bin(), "--local_rank=" + std::to_string(rank)}, k_tricky_args));
  }
  SECTION("--no_python --no_local_rank") {
    const auto argv = argv_of_ranks(box, concat({"--no_python", "--no_local_rank", env_dump_bin()}, k_tricky_args));
    for (int rank = 0; rank < 2; ++rank) CHECK(argv[rank] == concat({env_dump_bin()}, k_tricky_args));
  }
  SECTION("-- before PROGRAM ends dslaunch's flags") {
    const auto argv = argv_of_ranks(box, concat({"--", env_dump_bin()}, k_tricky_args));
    for (int rank = 0; rank < 2; ++rank) CHECK(argv[rank] == concat({env_dump_bin()}, k_tricky_args));
  }
}

TEST_CASE("a real python3 runs a .py script and a --module with -u, --local_rank=N and the user's bytes") {
  // sys.orig_argv (the interpreter's own argv, -u included) is new in Python 3.10.
  if (const auto why = ds::test::why_no_python3_at_least(3, 10)) DS_SKIP(*why + " (sys.orig_argv is needed)");
  // The script writes the interpreter's own argv (sys.orig_argv, as bytes: -u included).
  const std::string script =
      "import json, os, sys\n"
      "dump = {'orig_argv_hex': [os.fsencode(a).hex() for a in sys.orig_argv[1:]],\n"
      "        'argv_hex': [os.fsencode(a).hex() for a in sys.argv[1:]],\n"
      "        'rank': os.environ['RANK'], 'local_rank': os.environ['LOCAL_RANK']}\n"
      "with open(os.path.join(os.environ['ENV_DUMP_DIR'], 'rank' + os.environ['RANK'] + '.json'), 'w') as f:\n"
      "    json.dump(dump, f)\n";
  Sandbox box;
  box.dir.write("dump.py", script);
  box.dir.write("pkg/__init__.py", "");
  box.dir.write("pkg/dump.py", script);
  const std::vector<std::string> args = {"a b", "$HOME", "`id`", "héllo ✓", "", "\xff"};

  auto check = [&](const std::vector<std::string>& flags, const std::vector<std::string>& interpreter_args) {
    const RunResult r = box.run(concat(concat({"--num_gpus=2", "--master_port=0"}, flags), args));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    for (int rank = 0; rank < 2; ++rank) {
      INFO("rank " << rank);
      const auto dump = box.dump(rank);
      std::vector<std::string> orig;
      for (const auto& h : dump.at("orig_argv_hex")) orig.push_back(unhex(h.get<std::string>()));
      std::vector<std::string> expected = interpreter_args;
      expected.push_back("--local_rank=" + std::to_string(rank));
      CHECK(orig == concat(expected, args));
    }
  };
  SECTION("a script") { check({"dump.py"}, {"-u", "dump.py"}); }
  SECTION("a module") { check({"--module", "pkg.dump"}, {"-u", "-m", "pkg.dump"}); }
}
