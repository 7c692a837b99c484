// The memory estimator: DeepSpeed's formulas reproduce the tables computed from them in
// research/zero-anchors.md §5.2, and our own estimate orders the stages as ZeRO promises.
#include <catch2/catch.hpp>

#include "zero/estimate.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

double gib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024 * 1024); }

// GPT-2 XL as DeepSpeed's estimator sees it (HF gpt2-xl): P = 1,557,611,200, largest layer = wte.
EstimateInput gpt2_xl_8_gpus() {
  EstimateInput in;
  in.model_name = "gpt2-xl";
  in.params = 1'557'611'200;
  in.largest_unit = 50257LL * 1600;
  in.gpus_per_node = 8;
  in.nodes = 1;
  in.compute_dtype = DType::bf16;
  in.comm_dtype = DType::bf16;
  return in;
}

const MemoryEstimate& row(const std::vector<MemoryEstimate>& rows, int stage, OffloadDevice opt, OffloadDevice param) {
  for (const auto& r : rows)
    if (r.stage == stage && r.offload_optimizer == opt && r.offload_param == param) return r;
  FAIL("no row");
  return rows.front();
}

}  // namespace

TEST_CASE("DeepSpeed's estimator formulas give research's GPT-2 XL table on 1 node x 8 GPUs") {
  const auto rows = estimate_all(gpt2_xl_8_gpus());
  const auto none = OffloadDevice::none, cpu = OffloadDevice::cpu;
  // | option | per CPU | per GPU |  (GiB, zero_init=1), research §5.2
  CHECK(gib(row(rows, 2, cpu, none).ds_gpu_bytes) == Approx(2.90).margin(0.006));
  CHECK(gib(row(rows, 2, cpu, none).ds_cpu_bytes) == Approx(69.63).margin(0.006));
  CHECK(gib(row(rows, 2, none, none).ds_gpu_bytes) == Approx(6.17).margin(0.006));
  CHECK(gib(row(rows, 2, none, none).ds_cpu_bytes) == Approx(69.63).margin(0.006));
  CHECK(gib(row(rows, 3, cpu, cpu).ds_gpu_bytes) == Approx(0.30).margin(0.006));
  CHECK(gib(row(rows, 3, cpu, cpu).ds_cpu_bytes) == Approx(39.17).margin(0.006));
  CHECK(gib(row(rows, 3, cpu, none).ds_gpu_bytes) == Approx(0.66).margin(0.006));
  CHECK(gib(row(rows, 3, cpu, none).ds_cpu_bytes) == Approx(34.82).margin(0.006));
  CHECK(gib(row(rows, 3, none, none).ds_gpu_bytes) == Approx(3.56).margin(0.006));
  CHECK(gib(row(rows, 3, none, none).ds_cpu_bytes) == Approx(3.59).margin(0.006));
}

TEST_CASE("our estimate shrinks the GPU share stage by stage and moves optimizer bytes to the host with offload") {
  EstimateInput in = gpt2_xl_8_gpus();
  in.options.max_reuse_distance = 0;  // stage 3 releases units (else it keeps a model this size gathered)
  const auto none = OffloadDevice::none, cpu = OffloadDevice::cpu;
  const auto s0 = estimate_memory(in, 0, none, none);
  const auto s1 = estimate_memory(in, 1, none, none);
  const auto s2 = estimate_memory(in, 2, none, none);
  const auto s3 = estimate_memory(in, 3, none, none);
  CHECK(s0.device_bytes > s1.device_bytes);
  CHECK(s1.device_bytes > s2.device_bytes);
  CHECK(s2.device_bytes > s3.device_bytes);
  // Stage 0 holds 2 (params) + 2 (grads) + 16 (fp32 master, moments, accumulator) bytes per parameter.
  CHECK(s0.device_bytes >= 20 * in.params);
  // Stage 3 without offload: 18 bytes per parameter / N plus gathered units and buffers.
  CHECK(s3.device_bytes < 20 * in.params / 8 + 8 * in.largest_unit + 4 * in.options.reduce_bucket_size);
  const auto s2o = estimate_memory(in, 2, cpu, none);
  CHECK(s2o.device_bytes + 16 * in.params / 8 <= s2.device_bytes + 16);
  CHECK(s2o.host_bytes >= 16 * in.params / 8);
  // Param offload moves the shard of 16-bit params to the host, where it replaces the staging copy
  // that optimizer offload alone needs: the device holds less, the host the same.
  const auto s3o = estimate_memory(in, 3, cpu, none);
  const auto s3oo = estimate_memory(in, 3, cpu, cpu);
  CHECK(s3oo.device_bytes == s3o.device_bytes - 2 * ((in.params + 7) / 8));
  CHECK(s3oo.host_bytes == s3o.host_bytes);
}

TEST_CASE("the estimate table names the model, the world and every stage and offload row") {
  const auto in = gpt2_xl_8_gpus();
  const std::string table = format_estimate_table(in, estimate_all(in), "micro-batch 4 x 1024 tokens");
  CHECK_THAT(table, Catch::Contains("gpt2-xl"));
  CHECK_THAT(table, Catch::Contains("1 node(s) x 8 rank(s)"));
  CHECK_THAT(table, Catch::Contains("| 3     | cpu               | cpu           |"));
  CHECK_THAT(table, Catch::Contains("DeepSpeed per GPU"));
  CHECK(format_bytes(1536) == "2 KiB");
  CHECK(format_bytes(5 * 1024 * 1024) == "5.0 MiB");
  CHECK(describe_choice(estimate_memory(in, 3, OffloadDevice::cpu, OffloadDevice::cpu)) ==
        "ZeRO-3 + offload_optimizer=cpu + offload_param=cpu");
}
