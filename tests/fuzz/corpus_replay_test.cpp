// The fuzz targets' regression harness: every file of fuzz/corpus/<target>/ (seeds and the
// reproducers of fixed bugs) runs through the target's body, built with the normal compiler and
// no sanitizers. A body lets escape only what its code under test may not throw (a bug, or a
// ds::fuzz::Failure for a broken property), so any exception here fails the test, naming the file;
// a crash or a DS_CHECK abort fails it too. docs/fuzzing.md says what each target asserts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_target.hpp"

namespace {

namespace fs = std::filesystem;

const fs::path k_corpus_root = DS_FUZZ_CORPUS_DIR;

std::vector<fs::path> corpus_files(const std::string& target) {
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(k_corpus_root / target))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs every corpus file of target; returns how many ran. Fails (and goes on) for each file whose
// run lets an exception escape.
size_t replay(const std::string& target) {
  const auto found = ds::fuzz::registry().find(target);
  REQUIRE(found != ds::fuzz::registry().end());
  const std::vector<fs::path> files = corpus_files(target);
  for (const fs::path& file : files) {
    INFO("corpus file " << file.string());  // also shown when a DS_CHECK aborts the run
    const std::string bytes = read_bytes(file);
    try {
      found->second(bytes);
    } catch (const std::exception& e) {
      FAIL_CHECK(file.filename().string() << ": " << e.what());
    } catch (...) {
      FAIL_CHECK(file.filename().string() << ": an exception that is not a std::exception");
    }
  }
  return files.size();
}

}  // namespace

TEST_CASE("every fuzz target has a seed corpus, and every corpus folder belongs to a target") {
  std::vector<std::string> folders;
  for (const fs::directory_entry& entry : fs::directory_iterator(k_corpus_root))
    if (entry.is_directory()) folders.push_back(entry.path().filename().string());
  std::sort(folders.begin(), folders.end());
  std::vector<std::string> targets;
  for (const auto& [name, body] : ds::fuzz::registry()) targets.push_back(name);
  CHECK(folders == targets);
  for (const std::string& target : targets) {
    INFO("fuzz target " << target);
    CHECK(corpus_files(target).size() >= 10);
  }
}

TEST_CASE("the hostfile corpus parses or fails with HostfileError, and parsed hosts round-trip") {
  CHECK(replay("hostfile") >= 10);
}

TEST_CASE("the include/exclude corpus fails only with HostfileError, and include and exclude split the pool") {
  CHECK(replay("resource_filter") >= 10);
}

TEST_CASE("the argv corpus fails only with usage, hostfile or resource errors, and plans are consistent") {
  CHECK(replay("options") >= 10);
}

TEST_CASE("the store byte-stream corpus decodes the same however it is split") {
  CHECK(replay("store_protocol") >= 10);
}

TEST_CASE("the store server survives every corpus stream and then serves a well-behaved client") {
  CHECK(replay("store_server") >= 10);
}

TEST_CASE("the ds_config corpus fails only with config errors, and what loads reloads to the same config") {
  CHECK(replay("config") >= 10);
}
