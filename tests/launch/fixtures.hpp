// Shared helpers of the launch suite: the message of an expected error, and a made-up host.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <sys/stat.h>

#include "launch/host.hpp"
#include "launch/options.hpp"
#include "support/process.hpp"

namespace ds::launch::test {

// Runs f, expects it to throw E, returns the message. Fails the test if it does not throw E.
template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception of the named type");
  return {};
}

inline void make_executable(const ds::test::TempDir& dir, const std::string& name, const std::string& content = "#!/bin/sh\n") {
  dir.write(name, content);
  ::chmod(dir.file(name).c_str(), 0755);
}

// A host "testhost" (10.0.0.5) with `gpus` GPUs, 8 logical CPUs on 4 physical cores, a temp
// working directory holding train.py, and a PATH whose only python3 is a fake one in that directory.
struct FakeHost {
  ds::test::TempDir dir;
  HostFacts facts;

  explicit FakeHost(int gpus = 0) {
    dir.write("train.py", "print('hi')\n");
    make_executable(dir, "bin/python3");
    make_executable(dir, "bin/trainer");
    facts.env = {{"PATH", dir.file("bin") + ":/usr/bin:/bin"}, {"HOME", "/home/user"}};
    facts.cwd = dir.path();
    facts.hostname = "testhost";
    facts.addresses = {"10.0.0.5", "fe80::1"};
    facts.gpus = {gpus, gpus > 0 ? "test GPUs" : "no NVIDIA driver found"};
    facts.allowed_cpus = {0, 1, 2, 3, 4, 5, 6, 7};
    facts.physical_cores = {0, 1, 2, 3};
    facts.pid = 4242;
    facts.uid = 1000;
  }
  // A hostfile in the temp dir; returns its path.
  std::string hostfile(const std::string& content) const {
    dir.write("hostfile", content);
    return dir.file("hostfile");
  }
};

inline LaunchOptions options_of(std::vector<std::string> args) { return parse_options(args); }

}  // namespace ds::launch::test

namespace ds::launch::test {

// Options from args; unless -H was given, the default hostfile is pointed at a path that does not
// exist, so a /job/hostfile on the test machine cannot change the outcome.
inline LaunchOptions hermetic_options(const FakeHost& host, std::vector<std::string> args) {
  LaunchOptions o = parse_options(args);
  if (!o.hostfile_given) o.hostfile = host.dir.file("no-default-hostfile");
  return o;
}

}  // namespace ds::launch::test
