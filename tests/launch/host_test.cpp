#include <catch2/catch.hpp>

#include <unistd.h>

#include "launch/fixtures.hpp"
#include "launch/host.hpp"

using namespace ds::launch;

TEST_CASE("this host is recognised by loopback, hostname in any form, and interface address") {
  ds::launch::test::FakeHost host;
  for (const char* name : {"localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "testhost", "TestHost",
                           "testhost.cluster.local", "10.0.0.5", "fe80::1"})
    CHECK(is_local_host(name, host.facts));
  for (const char* name : {"worker-1", "10.0.0.6", "testhost2", "otherhost.testhost", "", "128.0.0.1"}) {
    INFO(name);
    CHECK_FALSE(is_local_host(name, host.facts));
  }
  host.facts.hostname = "testhost.cluster.local";
  CHECK(is_local_host("testhost", host.facts));
}

TEST_CASE("probing the real host finds its environment, CPUs and identity") {
  setenv("DSLAUNCH_PROBE_TEST", "yes", 1);
  unsetenv("DSLAUNCH_GPU_COUNT");
  const HostFacts facts = HostFacts::probe();
  CHECK(facts.env.at("DSLAUNCH_PROBE_TEST") == "yes");
  CHECK_FALSE(facts.cwd.empty());
  CHECK_FALSE(facts.hostname.empty());
  CHECK(is_local_host(facts.hostname, facts));
  REQUIRE_FALSE(facts.allowed_cpus.empty());
  CHECK_FALSE(facts.physical_cores.empty());
  CHECK(facts.physical_cores.size() <= facts.allowed_cpus.size());
  CHECK(facts.pid == static_cast<int>(getpid()));
  CHECK(facts.gpus.count >= 0);
  unsetenv("DSLAUNCH_PROBE_TEST");
}
