// Output: line integrity and prefixes on the console, per-rank log files, torchrun's log layout.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <regex>

#include "base/error.hpp"
#include "supervisor/fixtures.hpp"

using namespace ds::test;
using namespace ds::test::supervisor;
using ds::launch::StdStreams;

namespace {

std::string expected_payload(int rank, int i) {
  std::string text;
  for (int k = 0; k < 40 + (i * 7) % 60; ++k) text += static_cast<char>('a' + (rank * 31 + i + k) % 26);
  return text;
}

// Every line is "[rank R] rank R <stream> i payload", whole; per rank the lines come in order.
void check_chatter(const std::string& console, const std::string& stream, int ranks, int lines) {
  std::vector<int> next(ranks, 0);
  for (const auto& line : lines_of(console)) {
    static const std::regex k_line(R"(\[rank (\d+)\] rank (\d+) (out|err) (\d+) ([a-z]+))");
    std::smatch m;
    INFO("line: " << line);
    REQUIRE(std::regex_match(line, m, k_line));
    const int rank = std::stoi(m[1]);
    REQUIRE(std::stoi(m[2]) == rank);
    REQUIRE(m[3] == stream);
    REQUIRE(std::stoi(m[4]) == next[rank]);
    REQUIRE(m[5] == expected_payload(rank, next[rank]));
    ++next[rank];
  }
  for (int r = 0; r < ranks; ++r) CHECK(next[r] == lines);
}

}  // namespace

TEST_CASE("each console line of a rank arrives whole and prefixed with its rank while two ranks write thousands of lines at once") {
  TempDir dir;
  const int lines = 4000;
  auto run = run_captured(dir, same_program(2, {helper_bin(), "chatter", std::to_string(lines)}));
  REQUIRE(run.outcome.exit_code == 0);
  check_chatter(run.out, "out", 2, lines);  // stdout lines on our stdout only
  check_chatter(run.err, "err", 2, lines);  // stderr lines on our stderr only
}

TEST_CASE("a last line without a newline is printed whole when the rank exits") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "printf 'first\\nno newline at the end'\nprintf 'partial err' >&2\n");
  auto run = run_captured(dir, same_program(1, {script}));
  REQUIRE(run.outcome.exit_code == 0);
  CHECK(run.out == "[rank 0] first\n[rank 0] no newline at the end\n");
  CHECK(run.err == "[rank 0] partial err\n");
}

TEST_CASE("with prefix_lines off, console lines are the rank's own lines") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "echo plain\n");
  ds::launch::OutputOptions output;
  output.prefix_lines = false;
  auto run = run_captured(dir, same_program(1, {script}), fast_options(), output);
  CHECK(run.out == "plain\n");
}

TEST_CASE("with each_rank_log_dir every rank writes both streams to <YYYYmmddHHMMSS>_rank<N>.log and nothing to the console") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "echo \"out of $RANK\"\necho \"err of $RANK\" >&2\n");
  ds::launch::OutputOptions output;
  output.each_rank_log_dir = dir.file("logs");
  auto run = run_captured(dir, same_program(2, {script}), fast_options(), output);
  REQUIRE(run.outcome.exit_code == 0);
  CHECK(run.out.find("out of") == std::string::npos);
  CHECK(run.err.find("err of") == std::string::npos);
  std::map<int, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("logs"))) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    INFO("file: " << name);
    REQUIRE(std::regex_match(name, m, std::regex(R"(\d{14}_rank(\d+)\.log)")));
    files[std::stoi(m[1])] = dir.read("logs/" + name);
  }
  REQUIRE(files.size() == 2);
  for (int r = 0; r < 2; ++r) {
    const std::string rank = std::to_string(r);
    CHECK(files[r].find("out of " + rank + "\n") != std::string::npos);
    CHECK(files[r].find("err of " + rank + "\n") != std::string::npos);
    CHECK(files[r].find("[rank") == std::string::npos);  // raw lines, as the rank wrote them
  }
}

TEST_CASE("with log_dir, redirected streams go to <dir>/<run_id>/attempt_<k>/<local_rank>/{stdout,stderr}.log and teed ones also to the console") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "echo \"out of $RANK\"\necho \"err of $RANK\" >&2\n");
  ds::launch::OutputOptions output;
  output.log_dir = dir.file("tlogs");
  output.redirects = {StdStreams::both, StdStreams::none};  // rank 0: both streams to files only
  output.tee = {StdStreams::none, StdStreams::out};         // rank 1: stdout to file and console
  auto run = run_captured(dir, same_program(2, {script}), fast_options(), output);
  REQUIRE(run.outcome.exit_code == 0);
  const std::string base = "tlogs/testrun/attempt_0/";
  CHECK(dir.read(base + "0/stdout.log") == "out of 0\n");
  CHECK(dir.read(base + "0/stderr.log") == "err of 0\n");
  CHECK(dir.read(base + "1/stdout.log") == "out of 1\n");
  CHECK_FALSE(std::filesystem::exists(dir.file(base + "1/stderr.log")));
  CHECK(run.out == "[rank 1] out of 1\n");
  CHECK(run.err == "[rank 1] err of 1\n");
}

TEST_CASE("a log directory that cannot be created is an IoError naming it") {
  TempDir dir;
  dir.write("not_a_dir", "x");
  auto script = write_script(dir, "w.sh", "echo hi\n");
  ds::launch::OutputOptions output;
  output.each_rank_log_dir = dir.file("not_a_dir/logs");
  CapturedConsole console(dir);
  try {
    ds::launch::run_job(same_program(1, {script}), output, fast_options(), console.fds());
    FAIL("no exception");
  } catch (const ds::IoError& e) {
    CHECK(std::string(e.what()).find(dir.file("not_a_dir")) != std::string::npos);
  }
}

TEST_CASE("a console that nobody reads does not delay stopping the ranks") {
  TempDir dir;
  // Rank 0 floods stdout (20 MB, more than the console queue holds) and then sleeps; rank 1 fails.
  auto script = write_script(dir, "w.sh",
                             "if [ \"$RANK\" = 0 ]; then echo $$ > " + dir.file("r0.tmp") + "; mv " + dir.file("r0.tmp") +
                                 " " + dir.file("r0.pid") +
                                 "\n  head -c 20000000 /dev/zero | tr '\\0' x | fold -w 1000; exec sleep 1000; fi\n"
                                 "while [ ! -s " + dir.file("r0.pid") + " ]; do sleep 0.05; done\nsleep 1; exit 3\n");
  int console_pipe[2];
  REQUIRE(::pipe(console_pipe) == 0);
  const int err_fd = ::open(dir.file("console.err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::atomic<bool> rank0_gone_unread{false};
  std::atomic<bool> job_done{false};
  std::size_t bytes_read = 0;
  std::thread reader([&] {
    // Read nothing until rank 0 is dead (or 30 s passed); then drain until the job ends.
    if (wait_for_line(dir.file("r0.pid"))) rank0_gone_unread = wait_gone(read_pid(dir.file("r0.pid")), 30s);
    char buf[65536];
    while (true) {
      ssize_t n = ::read(console_pipe[0], buf, sizeof buf);
      if (n <= 0) break;
      bytes_read += static_cast<std::size_t>(n);
    }
  });
  auto outcome = ds::launch::run_job(same_program(2, {script}), {}, fast_options(), {console_pipe[1], err_fd});
  job_done = true;
  ::close(console_pipe[1]);
  reader.join();
  ::close(console_pipe[0]);
  ::close(err_fd);
  CHECK(outcome.exit_code == 3);
  CHECK(rank0_gone_unread);  // rank 0 was killed while the console was stalled
  CHECK(bytes_read > 0);     // and what had been queued still reached the console
}
