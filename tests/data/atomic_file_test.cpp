#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "support/process.hpp"

using namespace ds;

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("an atomic file replaces the old content only when committed") {
  test::TempDir dir;
  dir.write("latest", "global_step10");
  AtomicFile file(dir.file("latest"));
  file.write("global_step");
  file.write("20");
  CHECK(read_file(dir.file("latest")) == "global_step10");  // nothing visible before commit
  CHECK(std::filesystem::exists(file.temp_path()));
  CHECK(file.temp_path().rfind(dir.file("latest") + ".tmp." + std::to_string(::getpid()) + ".", 0) == 0);
  file.commit();
  CHECK(file.committed());
  CHECK(file.bytes_written() == 13);
  CHECK(read_file(dir.file("latest")) == "global_step20");
  CHECK(files_in(dir.path()) == std::vector<std::string>{"latest"});
}

TEST_CASE("an atomic file abandoned without commit leaves the old content and no temporary file") {
  test::TempDir dir;
  dir.write("manifest.json", "{\"old\":true}");
  std::string temp;
  {
    AtomicFile file(dir.file("manifest.json"));
    file.write("{\"new\":");
    temp = file.temp_path();
    CHECK(std::filesystem::exists(temp));
  }
  CHECK_FALSE(std::filesystem::exists(temp));
  CHECK(read_file(dir.file("manifest.json")) == "{\"old\":true}");
  CHECK(files_in(dir.path()) == std::vector<std::string>{"manifest.json"});
}

TEST_CASE("an atomic file abandoned without commit creates no target when there was none") {
  test::TempDir dir;
  { AtomicFile file(dir.file("fresh")); file.write("partial"); }
  CHECK(files_in(dir.path()).empty());
}

TEST_CASE("a writer killed before commit leaves the previous file intact") {
  test::TempDir dir;
  const std::string target = dir.file("latest");
  dir.write("latest", "good checkpoint");
  for (const bool commit_before_dying : {false, true}) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      AtomicFile file(target);
      file.write(std::string(3 << 20, 'x'));  // past the write buffer: bytes reach the temporary file
      if (commit_before_dying) file.commit();
      ::raise(SIGKILL);  // dies here: no destructor, no cleanup
      ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    if (commit_before_dying) {
      CHECK(read_file(target) == std::string(3 << 20, 'x'));  // control: a committed write survives the kill
    } else {
      CHECK(read_file(target) == "good checkpoint");
      // the killed writer's temporary file is left behind, under a name nothing reads
      const auto names = files_in(dir.path());
      REQUIRE(names.size() == 2);
      CHECK(names[0] == "latest");
      CHECK(names[1].rfind("latest.tmp." + std::to_string(child) + ".", 0) == 0);
      std::filesystem::remove(dir.file(names[1]));
    }
  }
}

TEST_CASE("write_file_atomic creates a file and replaces it, and read_file reads it back byte for byte") {
  test::TempDir dir;
  std::string bytes;
  for (int i = 0; i < (5 << 20) + 17; ++i) bytes.push_back(static_cast<char>((i * 131) & 0xff));
  write_file_atomic(dir.file("blob"), bytes);
  CHECK(read_file(dir.file("blob")) == bytes);
  write_file_atomic(dir.file("blob"), "short");
  CHECK(read_file(dir.file("blob")) == "short");
  write_file_atomic(dir.file("empty"), "");
  CHECK(read_file(dir.file("empty")).empty());
  CHECK(files_in(dir.path()) == std::vector<std::string>{"blob", "empty"});
}

TEST_CASE("read_file names the path and the reason when it cannot read") {
  test::TempDir dir;
  CHECK_THROWS_AS(read_file(dir.file("missing")), IoError);
  CHECK_THROWS_WITH(read_file(dir.file("missing")), "cannot open '" + dir.file("missing") + "' for reading: No such file or directory");
  CHECK_THROWS_WITH(read_file(dir.path()), "cannot read '" + dir.path() + "': it is a directory, not a file");
}

TEST_CASE("an atomic file in a missing directory is an IoError naming the directory") {
  test::TempDir dir;
  const std::string target = dir.file("no/such/dir/latest");
  try {
    AtomicFile file(target);
    FAIL("no error");
  } catch (const IoError& e) {
    const std::string message = e.what();
    CHECK(message.find("cannot create temporary file '" + target + ".tmp.") == 0);
    CHECK(message.find("to write '" + target + "': No such file or directory (does the directory '" + dir.file("no/such/dir") +
                       "' exist and is it writable?)") != std::string::npos);
  }
}
