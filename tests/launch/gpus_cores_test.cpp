#include <catch2/catch.hpp>

#include <filesystem>

#include "launch/cores.hpp"
#include "launch/fixtures.hpp"
#include "launch/gpus.hpp"
#include "base/error.hpp"

using namespace ds::launch;
using ds::launch::test::message_of;

TEST_CASE("DSLAUNCH_GPU_COUNT overrides GPU detection, 0 included") {
  ds::test::TempDir dir;
  dir.write("proc/0000:01:00.0/information", "x");
  const GpuProbePaths paths{dir.file("proc"), dir.file("dev")};
  CHECK(count_gpus({{"DSLAUNCH_GPU_COUNT", "4"}}, paths).count == 4);
  CHECK(count_gpus({{"DSLAUNCH_GPU_COUNT", "4"}}, paths).source == "DSLAUNCH_GPU_COUNT=4");
  CHECK(count_gpus({{"DSLAUNCH_GPU_COUNT", "0"}}, paths).count == 0);
  CHECK(count_gpus({}, paths).count == 1);
}

TEST_CASE("a DSLAUNCH_GPU_COUNT that is not a count is an error") {
  for (const char* bad : {"", "two", "-1", "2x", "1.5"}) {
    CHECK(message_of<ds::UsageError>([&] { count_gpus({{"DSLAUNCH_GPU_COUNT", bad}}); }) ==
          std::string("DSLAUNCH_GPU_COUNT='") + bad + "' is not a GPU count: give a whole number >= 0, or unset it to detect the GPUs");
  }
}

TEST_CASE("GPUs are counted from /proc/driver/nvidia/gpus, else from /dev/nvidiaN nodes") {
  ds::test::TempDir dir;
  const GpuProbePaths paths{dir.file("proc"), dir.file("dev")};
  CHECK(count_gpus({}, paths).count == 0);
  CHECK(count_gpus({}, paths).source == "no NVIDIA driver found");
  for (const char* node : {"nvidia0", "nvidia1", "nvidia12", "nvidiactl", "nvidia-uvm", "nvidia-modeset", "nvidia"})
    dir.write(std::string("dev/") + node, "");
  CHECK(count_gpus({}, paths).count == 3);
  CHECK(count_gpus({}, paths).source == dir.file("dev") + "/nvidia*");
  dir.write("proc/0000:01:00.0/information", "x");
  dir.write("proc/0000:02:00.0/information", "x");
  CHECK(count_gpus({}, paths).count == 2);
  CHECK(count_gpus({}, paths).source == dir.file("proc"));
}

TEST_CASE("a core list reads numbers and ranges in order") {
  CHECK(parse_core_list("1,3-5,7") == std::vector<int>{1, 3, 4, 5, 7});
  CHECK(parse_core_list("0") == std::vector<int>{0});
  CHECK(parse_core_list("8-11,0-1") == std::vector<int>{8, 9, 10, 11, 0, 1});
}

TEST_CASE("a bad core list is an error naming the token") {
  CHECK(message_of<ds::UsageError>([] { parse_core_list("1,x"); }) ==
        "--bind_core_list '1,x': 'x' is not a core number or range: write core ids and ranges, e.g. 1,3-5,7");
  CHECK(message_of<ds::UsageError>([] { parse_core_list("1,,2"); }) ==
        "--bind_core_list '1,,2': '' is not a core number or range: write core ids and ranges, e.g. 1,3-5,7");
  CHECK(message_of<ds::UsageError>([] { parse_core_list("5-3"); }) ==
        "--bind_core_list '5-3': range '5-3' runs backwards: write 3-5");
  CHECK(message_of<ds::UsageError>([] { parse_core_list("1-3,2"); }) ==
        "--bind_core_list '1-3,2' lists core 2 twice: list each core once");
  CHECK(message_of<ds::UsageError>([] { parse_core_list("-1"); }) ==
        "--bind_core_list '-1': '-1' is not a core number or range: write core ids and ranges, e.g. 1,3-5,7");
}

TEST_CASE("a core id beyond any CPU's is an error at once, not a range expanded for minutes") {
  // Seen while writing the options fuzzer, which times out on fuzz/corpus/options/
  // repro_bind_core_list_huge_range without the fix: the range was expanded core by core into a
  // set (gigabytes, minutes), and ++core would overflow at INT_MAX.
  CHECK(message_of<ds::UsageError>([] { parse_core_list("0-2147483647"); }) ==
        "--bind_core_list '0-2147483647': core 2147483647 is beyond any CPU id (at most 65535): list this host's cores, e.g. 0-7");
  CHECK(message_of<ds::UsageError>([] { parse_core_list("1,65536"); }) ==
        "--bind_core_list '1,65536': core 65536 is beyond any CPU id (at most 65535): list this host's cores, e.g. 0-7");
  CHECK(parse_core_list("65535") == std::vector<int>{65535});
}

TEST_CASE("cores split evenly across ranks and the remainder stays unused") {
  CHECK(split_cores({0, 1, 2, 3, 4, 5, 6, 7}, 4, "x") == std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  CHECK(split_cores({1, 3, 4, 5, 7}, 2, "x") == std::vector<std::vector<int>>{{1, 3}, {4, 5}});
  CHECK(split_cores({9}, 1, "x") == std::vector<std::vector<int>>{{9}});
  CHECK(message_of<ds::ResourceError>([] { split_cores({1, 2, 3}, 4, "from --bind_core_list 1-3"); }) ==
        "--bind_cores_to_rank needs at least one core per rank: 4 ranks but only 3 cores (from --bind_core_list 1-3): "
        "list more cores with --bind_core_list, or run fewer ranks");
}

TEST_CASE("physical cores are one hyperthread per core, from sysfs topology") {
  ds::test::TempDir dir;
  // 2 cores x 2 threads, numbered the Intel way: cpu0/cpu2 share core 0, cpu1/cpu3 share core 1.
  const int core_of[] = {0, 1, 0, 1};
  for (int cpu = 0; cpu < 4; ++cpu) {
    dir.write("cpu/cpu" + std::to_string(cpu) + "/topology/core_id", std::to_string(core_of[cpu]) + "\n");
    dir.write("cpu/cpu" + std::to_string(cpu) + "/topology/physical_package_id", "0\n");
  }
  CHECK(physical_cores({0, 1, 2, 3}, dir.file("cpu")) == std::vector<int>{0, 1});
  CHECK(physical_cores({3, 2}, dir.file("cpu")) == std::vector<int>{2, 3});  // the mask decides which thread
  // No topology (some containers): every allowed CPU counts as a core.
  CHECK(physical_cores({0, 1, 5}, dir.file("none")) == std::vector<int>{0, 1, 5});
}
