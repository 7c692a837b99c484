#include <catch2/catch.hpp>

#include "launch/fixtures.hpp"
#include "launch/resources.hpp"
#include "base/error.hpp"

using namespace ds::launch;
using ds::launch::test::message_of;

namespace {

Resources pool(std::vector<std::pair<std::string, int>> hosts) {
  Resources r;
  r.source = "in hostfile /h";
  for (auto& [host, n] : hosts) {
    HostSlots h{host, {}};
    for (int s = 0; s < n; ++s) h.slots.push_back(s);
    r.hosts.push_back(h);
  }
  return r;
}

std::vector<HostSlots> hosts(std::vector<HostSlots> h) { return h; }

std::string include_error(const Resources& p, const std::string& spec) {
  return message_of<ds::HostfileError>([&] { include_resources(p, spec); });
}
std::string exclude_error(const Resources& p, const std::string& spec) {
  return message_of<ds::HostfileError>([&] { exclude_resources(p, spec); });
}

}  // namespace

TEST_CASE("include and exclude on one node select slots as DeepSpeed does") {
  const Resources p = pool({{"worker-0", 4}});
  CHECK(exclude_resources(p, "worker-0:1").hosts == hosts({{"worker-0", {0, 2, 3}}}));
  CHECK(exclude_resources(p, "worker-0:1,2").hosts == hosts({{"worker-0", {0, 3}}}));
  CHECK(include_resources(p, "worker-0:1").hosts == hosts({{"worker-0", {1}}}));
  CHECK(include_resources(p, "worker-0:1,1").hosts == hosts({{"worker-0", {1}}}));
  CHECK(include_resources(p, "worker-0:1@worker-0:0,1").hosts == hosts({{"worker-0", {0, 1}}}));
  CHECK(include_resources(p, "worker-0:3,0").hosts == hosts({{"worker-0", {0, 3}}}));
  CHECK(include_resources(p, "worker-0").hosts == p.hosts);
  CHECK(exclude_resources(p, "worker-0").hosts.empty());
  CHECK(exclude_resources(p, "worker-0:0,1,2,3").hosts.empty());
}

TEST_CASE("include and exclude across nodes keep hostfile order") {
  const Resources p = pool({{"worker-0", 4}, {"worker-1", 4}});
  CHECK(include_resources(p, "worker-1:0,3").hosts == hosts({{"worker-1", {0, 3}}}));
  CHECK(exclude_resources(p, "worker-1").hosts == hosts({{"worker-0", {0, 1, 2, 3}}}));
  CHECK(exclude_resources(p, "worker-0:0,1@worker-1:3").hosts == hosts({{"worker-0", {2, 3}}, {"worker-1", {0, 1, 2}}}));
  // DeepSpeed's docstring example, and the spec order does not change rank order.
  CHECK(include_resources(p, "worker-0@worker-1:0,2").hosts == hosts({{"worker-0", {0, 1, 2, 3}}, {"worker-1", {0, 2}}}));
  CHECK(include_resources(p, "worker-1:2@worker-0:1").hosts == hosts({{"worker-0", {1}}, {"worker-1", {2}}}));
}

TEST_CASE("an unknown host in include or exclude is an error naming it and the known hosts") {
  const Resources p = pool({{"worker-0", 4}, {"worker-1", 4}});
  CHECK(include_error(p, "jeff") == "--include names host 'jeff', which is not in hostfile /h (hosts: worker-0, worker-1): use one of those names");
  CHECK(exclude_error(p, "jeff") == "--exclude names host 'jeff', which is not in hostfile /h (hosts: worker-0, worker-1): use one of those names");
  // DeepSpeed's "formatting" case: '5' is read as a host.
  CHECK(exclude_error(p, "worker-1@worker-0:1@5") ==
        "--exclude names host '5', which is not in hostfile /h (hosts: worker-0, worker-1): use one of those names");
}

TEST_CASE("a slot the host does not have is an error for include and exclude alike") {
  const Resources p = pool({{"worker-0", 4}, {"worker-1", 4}});
  CHECK(include_error(p, "worker-1:4") == "--include asks for slot 4 on host 'worker-1', which has slots 0-3 in hostfile /h");
  CHECK(exclude_error(p, "worker-1:4") == "--exclude asks for slot 4 on host 'worker-1', which has slots 0-3 in hostfile /h");
  CHECK(include_error(p, "worker-0:0,99") == "--include asks for slot 99 on host 'worker-0', which has slots 0-3 in hostfile /h");
  const Resources one = pool({{"solo", 1}});
  CHECK(include_error(one, "solo:1") == "--include asks for slot 1 on host 'solo', which has slot 0 in hostfile /h");
}

TEST_CASE("malformed include specs are errors that show the right syntax") {
  const Resources p = pool({{"worker-0", 4}});
  CHECK(include_error(p, "worker-0:") ==
        "--include 'worker-0:' has no slots after 'worker-0:': list them (worker-0:0,1) or give just 'worker-0' for all its slots");
  CHECK(include_error(p, "worker-0:a") == "--include 'worker-0:a': slot 'a' of host 'worker-0' is not a slot number: slots are GPU indices 0, 1, 2, ...");
  CHECK(include_error(p, "worker-0:-1") == "--include 'worker-0:-1': slot '-1' of host 'worker-0' is not a slot number: slots are GPU indices 0, 1, 2, ...");
  CHECK(include_error(p, "worker-0:1,,2") == "--include 'worker-0:1,,2': slot '' of host 'worker-0' is not a slot number: slots are GPU indices 0, 1, 2, ...");
  CHECK(include_error(p, "worker-0:1:2") == "--include 'worker-0:1:2' has more than one ':' in 'worker-0:1:2': write HOST:SLOT,SLOT, e.g. worker-1:0,2");
  CHECK(include_error(p, "worker-0@@worker-0") ==
        "--include 'worker-0@@worker-0' has an empty host name: write HOST[:SLOT[,SLOT...]] between the '@'s, e.g. worker-0@worker-1:0,2");
  CHECK(include_error(p, ":1") == "--include ':1' has an empty host name: write HOST[:SLOT[,SLOT...]] between the '@'s, e.g. worker-0@worker-1:0,2");
}

TEST_CASE("num_nodes keeps the first hosts and num_gpus the first slots of each") {
  const Resources p = pool({{"a", 4}, {"b", 2}, {"c", 4}});
  CHECK(first_nodes(p, 2, "--num_nodes 2").hosts == hosts({{"a", {0, 1, 2, 3}}, {"b", {0, 1}}}));
  CHECK(first_slots(first_nodes(p, 1, "--num_nodes 1"), 3, "--num_gpus 3").hosts == hosts({{"a", {0, 1, 2}}}));
  CHECK(first_slots(p, 2, "--num_gpus 2").hosts == hosts({{"a", {0, 1}}, {"b", {0, 1}}, {"c", {0, 1}}}));
  CHECK(message_of<ds::HostfileError>([&] { first_nodes(p, 4, "--num_nodes 4"); }) ==
        "--num_nodes 4 asks for 4 nodes, but there are 3 in hostfile /h: give a hostfile (-H) listing enough hosts, or ask for fewer nodes");
  // DeepSpeed would hand host b GPUs 2 and 3, which it does not have.
  CHECK(message_of<ds::HostfileError>([&] { first_slots(p, 4, "--num_gpus 4"); }) ==
        "--num_gpus 4 asks for slots 0-3 on host 'b', which has slots 0-1 in hostfile /h: ask for 2 or fewer");
}

TEST_CASE("CUDA_VISIBLE_DEVICES becomes an include list of localhost") {
  CHECK(include_from_visible_devices("0,2") == "localhost:0,2");
  CHECK(include_from_visible_devices("3") == "localhost:3");
  const Resources local = local_pool(4, "on this host (4 GPUs found: test)");
  CHECK(include_resources(local, include_from_visible_devices("0,2")).hosts == hosts({{"localhost", {0, 2}}}));
  // DeepSpeed's #5818 guard: a mask naming a GPU that does not exist is refused by name.
  CHECK(message_of<ds::HostfileError>([&] { include_resources(local_pool(2, "on this host (2 GPUs found: test)"), "localhost:0,2"); }) ==
        "--include asks for slot 2 on host 'localhost', which has slots 0-1 on this host (2 GPUs found: test)");
  CHECK(message_of<ds::UsageError>([] { include_from_visible_devices("GPU-8f1c2a,GPU-77"); }) ==
        "CUDA_VISIBLE_DEVICES=GPU-8f1c2a,GPU-77 is not a list of GPU indices ('GPU-8f1c2a'): dslaunch assigns GPUs by index, "
        "so unset it and select GPUs with --include localhost:0,1 instead");
}

TEST_CASE("slot lists print as ranges") {
  CHECK(format_slots({0, 1, 2, 3}) == "0-3");
  CHECK(format_slots({0, 2, 5, 6, 7}) == "0,2,5-7");
  CHECK(format_slots({4}) == "4");
  CHECK(format_slots({}) == "");
}
