// A stranger beside a real job: while `dslaunch dsworker` trains on 2 CPU ranks, an
// unauthenticated client speaking torch's raw wire protocol tries what the held-out check did
// (list the job's keys, read and overwrite a rank's Gloo address, a MULTI_GET that would build a
// 400 GB reply, a request that stalls halfway). Every attempt is refused, the launcher's memory
// stays bounded, and the job's losses are bitwise those of an undisturbed run (docs/store.md).
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include "mp/worker_fixtures.hpp"
#include "store/store_test_util.hpp"

using namespace ds;
using namespace ds::test;
using namespace ds::test::mp;

namespace {

constexpr int k_steps = 1500;  // long enough (seconds) for the hostile client to finish its tries

std::vector<std::string> job_args(const std::string& metrics) {
  return small_model_args(k_steps) + std::vector<std::string>{"--micro_batch", "2", "--metrics", metrics};
}

std::vector<double> losses_of(const std::string& metrics_path) {
  std::vector<double> losses;
  for (const auto& record : read_step_metrics(metrics_path)) losses.push_back(record.at("loss").get<double>());
  return losses;
}

// kB of a "Name:   123 kB" line of /proc/<pid>/status; -1 when unreadable.
long status_kb(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + ":", 0) == 0) return std::stol(line.substr(name.size() + 1));
  return -1;
}

// The job's store port, read from a rank's environment once the first step is done (so the
// rendezvous keys, the start barrier and both Gloo addresses, are in the store).
uint16_t store_port_of(const Background& job, const Sandbox& box, const std::string& metrics) {
  REQUIRE(wait_for_text(box.dir.file(metrics), "\"step\"", 60s));
  const std::vector<pid_t> workers = descendants_running(job.pid(), dsworker_bin());
  REQUIRE(!workers.empty());
  const std::string port = environ_value(workers.front(), "DSLAUNCH_STORE_PORT");
  REQUIRE(!port.empty());
  return static_cast<uint16_t>(std::stoi(port));
}

std::vector<std::string> list_keys(RawClient& c) {
  c.send("\x11");
  const std::string count_bytes = c.recv(8);  // WireReader views its buffer: keep it alive
  store::WireReader count_reader(count_bytes);
  uint64_t n = 0;
  REQUIRE(count_reader.u64(n));
  std::vector<std::string> keys;
  for (uint64_t i = 0; i < n; ++i) {
    const std::string length_bytes = c.recv(8);
    store::WireReader length_reader(length_bytes);
    uint64_t size = 0;
    REQUIRE(length_reader.u64(size));
    keys.push_back(c.recv(size));
  }
  return keys;
}

// A key dsworker uses: rank 1's Gloo address (lib/zero/trainer.cpp, lib/comm/comm_gloo.cpp).
std::string gloo_key(const std::string& run_id) { return "dsworker/" + run_id + "/attempt_0/dp/gloo/1"; }

}  // namespace

TEST_CASE("a torch-compatible job (protected keys only): a stranger sees no job key, and every cap holds") {
  Sandbox reference_box;
  const RunResult reference = launch_dsworker_ok(reference_box, 2, job_args("m.jsonl"));
  const std::vector<double> expected = losses_of(reference_box.dir.file("m.jsonl"));
  REQUIRE(expected.size() == static_cast<std::size_t>(k_steps));

  Sandbox box;
  const std::string run_id = "hostile-run";
  std::vector<std::string> argv = {dslaunch_bin(), "--num_gpus=2", "--master_port=0", "--rdzv_id=" + run_id, dsworker_bin()};
  for (const auto& a : job_args("m.jsonl")) argv.push_back(a);
  Background job(argv,
                 box.env_with({{"DSLAUNCH_STORE_REQUIRE_AUTH", "0"},  // as for torch workers: open keys stay open
                               {"DSLAUNCH_STORE_REQUEST_TIMEOUT", "0.5"}}),
                 box.dir);
  const uint16_t port = store_port_of(job, box, "m.jsonl");

  // A request that stalls halfway: started first, dropped after 0.5 s while the rest goes on.
  RawClient stalled(port);
  stalled.validate();
  stalled.send("\x01" + framed("stall") + u64_le(1000) + "partial");

  {
    RawClient c(port);
    c.validate();
    c.send("\x01" + framed("/stranger") + framed("1"));  // an open key: allowed, as in torch
    const std::vector<std::string> keys = list_keys(c);
    INFO("an unauthenticated LIST_KEYS saw: " << keys.size() << " keys");
    CHECK(std::find(keys.begin(), keys.end(), "/stranger") != keys.end());
    for (const auto& key : keys) CHECK_FALSE(store::is_protected_key(key));
  }
  {
    RawClient c(port);
    c.validate();
    c.send("\x03" + framed(gloo_key(run_id)));  // GET rank 1's Gloo address
    CHECK(c.closed_by_server());
  }
  {
    RawClient c(port);
    c.validate();
    c.send("\x01" + framed(gloo_key(run_id)) + framed("127.0.0.1:1"));  // redirect its gradients
    CHECK(c.closed_by_server());
  }
  {
    RawClient c(port);
    c.validate();
    c.send("\x01" + framed("dsworker/" + run_id + "/attempt_0/dp/failure") + framed("0\nfake failure"));
    CHECK(c.closed_by_server());
  }
  const long hwm_before_kb = status_kb(job.pid(), "VmHWM");
  {
    // 4 MiB under an open key, then one MULTI_GET naming it 100,000 times: a 400 GB reply.
    RawClient c(port);
    c.validate();
    c.send("\x01" + framed("/big") + framed(std::string(4u << 20, 'b')));
    std::string request = "\x0a" + u64_le(100'000);
    const std::string key = framed("/big");
    for (int i = 0; i < 100'000; ++i) request += key;
    c.send(request);
    CHECK(c.closed_by_server());
  }
  const long hwm_after_kb = status_kb(job.pid(), "VmHWM");
  INFO("dslaunch VmHWM " << hwm_before_kb << " kB before the giant MULTI_GET, " << hwm_after_kb << " kB after");
  REQUIRE(hwm_after_kb > 0);
  CHECK(hwm_after_kb < 64 * 1024);  // it grew to 1.3 GB before the cap
  CHECK(stalled.closed_by_server());
  REQUIRE(process_alive(job.pid()));  // all of it happened beside the running job

  const auto status = job.wait(300s);
  REQUIRE(status.has_value());
  INFO(job.err());
  CHECK(shell_status(*status) == 0);
  CHECK(losses_of(box.dir.file("m.jsonl")) == expected);  // bitwise: the stranger changed nothing
  const std::string err = job.err();
  CHECK(err.find("(max_reply_bytes 67108864): the reply to its MULTI_GET of 100000 keys") != std::string::npos);
  CHECK(err.find("(request_timeout 500 ms): it sent 29 bytes of a SET request") != std::string::npos);
  CHECK(err.find("on key '" + gloo_key(run_id) + "', which only clients holding the job token may use") != std::string::npos);
}

TEST_CASE("a dsworker job requires the token of every client: a stranger cannot even list keys") {
  Sandbox box;
  std::vector<std::string> argv = {dslaunch_bin(), "--num_gpus=2", "--master_port=0", dsworker_bin()};
  for (const auto& a : job_args("m.jsonl")) argv.push_back(a);
  Background job(argv, box.env_with({{"DSLAUNCH_STORE_REQUEST_TIMEOUT", "0.5"}}), box.dir);
  const uint16_t port = store_port_of(job, box, "m.jsonl");
  {
    RawClient c(port);
    c.validate();
    c.send("\x11");  // LIST_KEYS
    CHECK(c.closed_by_server());
  }
  {
    RawClient c(port);
    c.validate();
    c.send("\x01" + framed("/open") + framed("x"));  // even an open key
    CHECK(c.closed_by_server());
  }
  {
    RawClient idle(port);  // connects, validates, never authenticates: dropped after 0.5 s
    idle.validate();
    CHECK(idle.closed_by_server());
  }
  REQUIRE(process_alive(job.pid()));
  const auto status = job.wait(300s);
  REQUIRE(status.has_value());
  INFO(job.err());
  CHECK(shell_status(*status) == 0);
  CHECK(losses_of(box.dir.file("m.jsonl")).size() == static_cast<std::size_t>(k_steps));
  CHECK(job.err().find("LIST_KEYS before authenticating (this store requires the job token)") != std::string::npos);
}
