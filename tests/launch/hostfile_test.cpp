#include <catch2/catch.hpp>

#include "launch/fixtures.hpp"
#include "launch/hostfile.hpp"
#include "base/error.hpp"

using namespace ds::launch;
using ds::launch::test::message_of;

namespace {
std::string error_for(const std::string& text) {
  return message_of<ds::HostfileError>([&] { parse_hostfile(text, "/h"); });
}
}  // namespace

TEST_CASE("a hostfile with blank lines, comments and indentation keeps its hosts in order") {
  // DeepSpeed's own good case (tests/unit/launcher/test_run.py), indentation included.
  const Hostfile h = parse_hostfile(
      "\n    worker-1 slots=2\n    worker-2 slots=2\n\n    localhost slots=1\n    123.23.12.10 slots=2\n\n"
      "    #worker-1 slots=3\n    # this is a comment\n\n    ",
      "/h");
  REQUIRE(h.hosts.size() == 4);
  CHECK(h.hosts[0].host == "worker-1");
  CHECK(h.hosts[0].slots == 2);
  CHECK(h.hosts[0].line == 2);
  CHECK(h.hosts[1].host == "worker-2");
  CHECK(h.hosts[2].host == "localhost");
  CHECK(h.hosts[2].slots == 1);
  CHECK(h.hosts[3].host == "123.23.12.10");
  CHECK(h.hosts[3].line == 6);
  CHECK(h.path == "/h");
}

TEST_CASE("text after slots=N is ignored, as DeepSpeed does, once it is separated") {
  const Hostfile h = parse_hostfile("w0 slots=4 # rack 2\nw1 slots=8 max_slots=16\nw2\tslots=2#gpu\r\nw3  slots=1\n", "/h");
  REQUIRE(h.hosts.size() == 4);
  CHECK(h.hosts[0].slots == 4);
  CHECK(h.hosts[1].slots == 8);
  CHECK(h.hosts[2].host == "w2");
  CHECK(h.hosts[2].slots == 2);
  CHECK(h.hosts[3].slots == 1);
}

TEST_CASE("a malformed hostfile line is an error naming the file, the line and its text") {
  CHECK(error_for("worker-1 slots=2\nthis is bad slots=1\n") ==
        "hostfile /h:2: bad entry 'this is bad slots=1': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
  CHECK(error_for("\n    missingslots\n") ==
        "hostfile /h:2: bad entry 'missingslots': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
  CHECK(error_for("w0 slots = 4") ==
        "hostfile /h:1: bad entry 'w0 slots = 4': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
  CHECK(error_for("w0 slots=") ==
        "hostfile /h:1: bad entry 'w0 slots=': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
  CHECK(error_for("w0 slots=-1") ==
        "hostfile /h:1: bad entry 'w0 slots=-1': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
  CHECK(error_for("w0 # slots=4") ==
        "hostfile /h:1: bad entry 'w0 # slots=4': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
  // DeepSpeed's regex would read 4 here; digits glued to text are a typo we refuse.
  CHECK(error_for("w0 slots=4abc") ==
        "hostfile /h:1: bad entry 'w0 slots=4abc': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
}

TEST_CASE("the first bad line of a mixed hostfile is the one reported") {
  // DeepSpeed's "mix of good/bad" case.
  CHECK(error_for("\n    worker-1 slots=2\n    this is bad slots=1\n    worker-2 slots=4\n    missingslots\n\n") ==
        "hostfile /h:3: bad entry 'this is bad slots=1': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
}

TEST_CASE("a host listed twice is an error naming both lines") {
  CHECK(error_for("\n    worker-1 slots=2\n    worker-2 slots=1\n    worker-1 slots=1\n    ") ==
        "hostfile /h:4: host 'worker-1' is listed again (first at line 2): list each host once with all its slots");
}

TEST_CASE("an empty hostfile, or one with only comments, is an error") {
  const std::string expected =
      "hostfile /h has no hosts (only blank lines or comments): add lines like 'worker-0 slots=4', or leave out the "
      "hostfile to run on this node only";
  CHECK(error_for("") == expected);
  CHECK(error_for("\n    \n") == expected);
  CHECK(error_for("# worker-0 slots=4\n\n  # another\n") == expected);
}

TEST_CASE("slots=0 and absurd slot counts are errors") {
  CHECK(error_for("w0 slots=1\nw1 slots=0\n") ==
        "hostfile /h:2: 'w1 slots=0' gives host 'w1' no slots: give slots=N with N >= 1, or remove the line");
  CHECK(error_for("w0 slots=99999999999999999999") ==
        "hostfile /h:1: slots=99999999999999999999 on host 'w0' is too large (at most 65536): give the number of GPUs "
        "(or CPU ranks) of that host");
  CHECK(parse_hostfile("w0 slots=65536", "/h").hosts[0].slots == 65536);
}

TEST_CASE("a missing default hostfile means this node only, a missing given one is an error") {
  ds::test::TempDir dir;
  const std::string missing = dir.file("nope");
  CHECK_FALSE(read_hostfile(missing, HostfilePresence::optional).has_value());
  CHECK(message_of<ds::HostfileError>([&] { read_hostfile(missing, HostfilePresence::required); }) ==
        "hostfile " + missing + " does not exist: fix the path given with -H/--hostfile, or leave it out to run on this node only");
  CHECK(message_of<ds::HostfileError>([&] { read_hostfile(dir.path(), HostfilePresence::optional); }) ==
        "hostfile " + dir.path() + " is a directory, not a file: give the path of a file with lines like 'worker-0 slots=4'");
  dir.write("hf", "localhost slots=2\nbad\n");
  CHECK(message_of<ds::HostfileError>([&] { read_hostfile(dir.file("hf"), HostfilePresence::optional); }) ==
        "hostfile " + dir.file("hf") + ":2: bad entry 'bad': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
  dir.write("good", "localhost slots=2\n");
  const std::optional<Hostfile> good = read_hostfile(dir.file("good"), HostfilePresence::required);
  REQUIRE(good);
  CHECK(good->hosts.at(0).slots == 2);
}
