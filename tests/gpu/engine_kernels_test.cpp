// The engine's CUDA kernels (zero/cuda/engine_kernels.hpp) against their host twins, bit for bit:
// conversions, accumulation, unscaling, the sum of squares, the NaN/inf search and the fused Adam
// step, on fresh random inputs (kernel_check.hpp prints the seed), with every output poisoned
// before the kernel runs and guard bytes around every device array.
#include <catch2/catch.hpp>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "gpu/kernel_check.hpp"
#include "zero/adam.hpp"
#include "zero/cuda/engine_kernels.hpp"
#include "zero/engine_internal.hpp"
#include "zero/grad_norm.hpp"

using namespace ds;
using namespace ds::test;
using ds::zero::k_norm_block;

namespace {

constexpr DType k_types[] = {DType::f32, DType::bf16, DType::f16};
constexpr float k_inf = std::numeric_limits<float>::infinity();
constexpr float k_nan = std::numeric_limits<float>::quiet_NaN();

// Sizes every kernel is run at: one element, odd and under one block, exactly one block, and
// several blocks with a ragged end.
const std::vector<int64_t> k_sizes = {1, 1001, k_norm_block, 3 * k_norm_block + 17};

// A stream of our own (not the legacy default stream), as the engine will use.
struct Stream {
  cudaStream_t s = nullptr;
  Stream() { DS_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s); }
};

using Bytes = std::vector<unsigned char>;

// Values for dtype `type` spread over many binades (some overflow or underflow fp16, which the
// conversions must round as the host does).
std::vector<float> wide_values(size_t n) { return random_wide_vector<float>(n, -30, 17); }

double host_sum_of_squares(const Bytes& g, DType type, int64_t n) {
  return visit_dtype(type, [&](auto t) {
    using T = decltype(t);
    return zero::sum_of_squares(reinterpret_cast<const T*>(g.data()), n);
  });
}

int64_t host_find_nonfinite(const Bytes& g, DType type, int64_t n) {
  return visit_dtype(type, [&](auto t) {
    using T = decltype(t);
    return zero::find_nonfinite(reinterpret_cast<const T*>(g.data()), n);
  });
}

uint64_t bits_of(double x) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

}  // namespace

TEST_CASE("convert_scaled equals the host conversion bit for bit, every dtype pair, with and without a scale") {
  Stream stream;
  for (int64_t n : k_sizes) {
    std::vector<float> values = wide_values(static_cast<size_t>(n));
    values[0] = k_inf;
    if (n > 2) values[2] = -k_inf;
    if (n > 3) values[3] = 1e-40f;  // an fp32 subnormal: no flush to zero on either side
    for (float scale : {1.0f, 0.37f, 65536.0f}) {
      // A NaN is copied by the scale-1 path, so its payload must survive exactly; a multiply makes
      // a canonical NaN on the GPU and keeps the payload on x86 (engine_kernels.hpp), so NaN is
      // placed only where nothing multiplies it.
      std::vector<float> in_values = values;
      if (scale == 1.0f && n > 1) in_values[1] = k_nan;
      for (DType src_type : k_types) {
        const Bytes src = encode_as(in_values, src_type);
        for (DType dst_type : k_types) {
          INFO("n " << n << ", scale " << scale << ", " << dtype_name(src_type) << " -> " << dtype_name(dst_type));
          DeviceArray<unsigned char> d_src(src), d_dst(static_cast<size_t>(n) * dtype_size(dst_type));
          d_dst.poison();
          zero::cuda::convert_scaled(d_dst.data(), dst_type, d_src.data(), src_type, n, scale, stream.s);
          Bytes want(d_dst.size());
          zero::convert_scaled(want.data(), dst_type, src.data(), src_type, n, scale);
          const Bytes got = d_dst.download();
          CHECK(first_bit_difference(got, want) == -1);
          CHECK(d_dst.guards_intact());
          CHECK(d_src.download() == src);
        }
      }
    }
  }
}

TEST_CASE("accumulate_f32 adds every source dtype into fp32 as the host does") {
  Stream stream;
  for (int64_t n : k_sizes) {
    const std::vector<float> dst0 = wide_values(static_cast<size_t>(n));
    for (DType src_type : k_types) {
      INFO("n " << n << ", " << dtype_name(src_type));
      const Bytes src = encode_as(wide_values(static_cast<size_t>(n)), src_type);
      DeviceArray<float> d_dst(dst0);
      DeviceArray<unsigned char> d_src(src);
      zero::cuda::accumulate_f32(d_dst.data(), d_src.data(), src_type, n, stream.s);
      std::vector<float> want = dst0;
      zero::accumulate_f32(want.data(), src.data(), src_type, n);
      CHECK(first_bit_difference(d_dst.download(), want) == -1);
      CHECK(d_dst.guards_intact());
    }
  }
}

TEST_CASE("unscale_and_clip multiplies by float(1 / combined) as the host does, and skips a combined scale of 1") {
  Stream stream;
  for (int64_t n : k_sizes) {
    const std::vector<float> g0 = wide_values(static_cast<size_t>(n));
    for (double combined : {2048.0, 3.7, 1.0 / 3.0, 1.0}) {
      INFO("n " << n << ", combined " << combined);
      DeviceArray<float> d_g(g0);
      zero::cuda::unscale_and_clip(d_g.data(), n, combined, stream.s);
      std::vector<float> want = g0;
      zero::unscale_and_clip(want.data(), n, combined);
      const std::vector<float> got = d_g.download();
      CHECK(first_bit_difference(got, want) == -1);
      if (combined == 1.0) CHECK(got == g0);
      CHECK(d_g.guards_intact());
    }
  }
}

TEST_CASE("sum_of_squares has the host's bits in every dtype and size, on wide-range data") {
  Stream stream;
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{1001}, k_norm_block - 1, k_norm_block, 3 * k_norm_block + 17,
                    20 * k_norm_block + 255}) {
    const std::vector<float> values = random_wide_vector<float>(static_cast<size_t>(std::max<int64_t>(n, 1)), -20, 12);
    for (DType type : k_types) {
      INFO("n " << n << ", " << dtype_name(type));
      Bytes g = encode_as(values, type);
      g.resize(static_cast<size_t>(n) * dtype_size(type));
      DeviceArray<unsigned char> d_g(g);
      DeviceArray<unsigned char> d_scratch(zero::cuda::sum_of_squares_scratch_bytes(n));
      DeviceArray<double> d_sum(1);
      d_sum.poison();
      zero::cuda::sum_of_squares(d_sum.data(), d_g.data(), type, n, d_scratch.data(), stream.s);
      const double got = d_sum.download()[0];
      const double want = host_sum_of_squares(g, type, n);
      INFO("got " << got << ", want " << want);
      CHECK(bits_of(got) == bits_of(want));
      CHECK(d_sum.guards_intact());
      CHECK(d_scratch.guards_intact());
    }
  }
}

TEST_CASE("sum_of_squares_many equals the host's per-slice sums added in order, across launch batches") {
  Stream stream;
  // 3 inputs, then 250 (more than one launch batch of 96), mixed dtypes and sizes, empty ones too.
  for (size_t count : {size_t{3}, size_t{250}}) {
    INFO(count << " inputs");
    std::vector<Bytes> host(count);
    std::vector<std::unique_ptr<DeviceArray<unsigned char>>> device;
    std::vector<zero::cuda::SquaresInput> inputs;
    std::uniform_int_distribution<int64_t> size_of(0, count == 3 ? 2 * k_norm_block + 999 : 3000);
    double want = 0.0;
    for (size_t k = 0; k < count; ++k) {
      const DType type = k_types[k % 3];
      const int64_t n = k % 7 == 4 ? 0 : size_of(rng());
      host[k] = encode_as(random_wide_vector<float>(static_cast<size_t>(n), -20, 12), type);
      device.push_back(std::make_unique<DeviceArray<unsigned char>>(host[k]));
      inputs.push_back({device.back()->data(), type, n});
      want += host_sum_of_squares(host[k], type, n);  // the engine's `mine += sum_of_squares(slice)`
    }
    DeviceArray<unsigned char> d_scratch(zero::cuda::sum_of_squares_many_scratch_bytes(inputs));
    DeviceArray<double> d_sum(1);
    d_sum.poison();
    zero::cuda::sum_of_squares_many(d_sum.data(), inputs, d_scratch.data(), stream.s);
    const double got = d_sum.download()[0];
    INFO("got " << got << ", want " << want);
    CHECK(bits_of(got) == bits_of(want));
    CHECK(d_scratch.guards_intact());
  }
  // No inputs: +0.0, as the host's empty sum.
  DeviceArray<double> d_sum(1);
  d_sum.poison();
  zero::cuda::sum_of_squares_many(d_sum.data(), {}, nullptr, stream.s);
  CHECK(bits_of(d_sum.download()[0]) == bits_of(0.0));
}

TEST_CASE("find_nonfinite returns the first NaN or inf, as the host, and -1 when all are finite") {
  Stream stream;
  const int64_t n = 3 * k_norm_block + 17;
  struct Case {
    std::vector<int64_t> nan_at, inf_at;
    int64_t want;
  };
  const std::vector<Case> cases = {
      {{}, {}, -1},
      {{0}, {}, 0},
      {{}, {n - 1}, n - 1},
      {{2 * k_norm_block + 1}, {k_norm_block - 1}, k_norm_block - 1},  // an inf first, a later NaN
      {{k_norm_block, 5}, {3 * k_norm_block}, 5},
      {{}, {1000, 1001, 2 * k_norm_block}, 1000},
  };
  for (DType type : k_types) {
    for (const Case& c : cases) {
      for (int64_t size : {n, int64_t{1001}}) {
        std::vector<float> values = random_vector<float>(static_cast<size_t>(size));
        int64_t want = -1;
        for (int64_t i : c.nan_at)
          if (i < size) values[static_cast<size_t>(i)] = k_nan;
        for (int64_t i : c.inf_at)
          if (i < size) values[static_cast<size_t>(i)] = (i % 2 ? -k_inf : k_inf);
        for (int64_t i = 0; i < size && want < 0; ++i) want = std::isfinite(values[static_cast<size_t>(i)]) ? -1 : i;
        if (size == n) REQUIRE(want == c.want);
        INFO(dtype_name(type) << ", n " << size << ", want " << want);
        const Bytes g = encode_as(values, type);
        DeviceArray<unsigned char> d_g(g);
        DeviceArray<unsigned char> d_scratch(zero::cuda::find_nonfinite_scratch_bytes(size));
        DeviceArray<int64_t> d_index(1);
        d_index.poison();
        zero::cuda::find_nonfinite(d_index.data(), d_g.data(), type, size, d_scratch.data(), stream.s);
        const int64_t got = d_index.download()[0];
        CHECK(got == want);
        CHECK(got == host_find_nonfinite(g, type, size));
        CHECK(d_index.guards_intact());
      }
    }
  }
  DeviceArray<int64_t> d_index(1);
  d_index.poison();
  zero::cuda::find_nonfinite(d_index.data(), nullptr, DType::f32, 0, nullptr, stream.s);
  CHECK(d_index.download()[0] == -1);
}

namespace {

// One Adam problem: optimizer state in the middle of training, a segment table with gaps, the
// same inputs on the host and the device.
struct AdamProblem {
  int64_t n = 0;
  std::vector<float> p, m, v;
  std::vector<float> grad_values;
  std::vector<zero::AdamHyper> groups;
  std::vector<zero::ParamGroupSegment> segments;

  // `n_segments` pieces of random length with random gaps (and an empty segment) over [0, n),
  // each of a random group, the tail past the last segment left as padding.
  AdamProblem(int64_t elements, int n_groups, int n_segments, int64_t step, zero::AdamMode mode,
              zero::BiasCorrection bias) {
    n = elements;
    p = random_vector<float>(static_cast<size_t>(n));
    m = random_vector<float>(static_cast<size_t>(n), 0.1f);
    v = random_wide_vector<float>(static_cast<size_t>(n), -30, -2);
    for (float& x : v) x = std::fabs(x);
    grad_values = random_wide_vector<float>(static_cast<size_t>(n), -24, 3);
    for (int g = 0; g < n_groups; ++g) {
      zero::AdamHyper h;
      h.lr = 1e-3f * static_cast<float>(g + 1);
      h.beta1 = g % 2 ? 0.85f : 0.9f;
      h.beta2 = g % 3 == 2 ? 0.95f : 0.999f;
      h.eps = g % 2 ? 1e-6f : 1e-8f;
      h.weight_decay = g % 4 == 1 ? 0.0f : 0.01f * static_cast<float>(g + 1);  // some groups without decay
      h.mode = mode;
      h.bias_correction = bias;
      h.step = step + g;  // each group its own count
      groups.push_back(h);
    }
    if (n_segments == 1) {
      segments.push_back({0, n, 0});
      return;
    }
    // Gaps and lengths drawn so the segments cover most of [0, limit); a gap before the first
    // segment and the tail [limit, n) are padding for sure.
    const int64_t limit = n - std::max<int64_t>(1, n / 64);
    const int64_t share = std::max<int64_t>(1, limit / (n_segments + 1));
    std::uniform_int_distribution<int64_t> gap(0, std::max<int64_t>(1, share / 8));
    std::uniform_int_distribution<int64_t> length(1, std::max<int64_t>(1, 2 * share - 2 * (share / 8)));
    std::uniform_int_distribution<int> group(0, n_groups - 1);
    int64_t at = 1 + gap(rng());
    for (int s = 0; s < n_segments && at < limit; ++s) {
      const int64_t count = s == n_segments / 2 ? 0 : std::min(length(rng()), limit - at);  // and one empty segment
      segments.push_back({at, count, group(rng())});
      at += count + gap(rng());
    }
  }
};

struct AdamResult {
  std::vector<float> p, m, v;
  Bytes out;
};

constexpr unsigned char k_out_poison = 0xFF;

AdamResult host_adam(const AdamProblem& pr, const Bytes& grad, DType grad_type, float scale, const DType* out_type) {
  AdamResult r{pr.p, pr.m, pr.v, {}};
  zero::Copy16 out{nullptr, DType::bf16};
  if (out_type) {
    r.out.assign(static_cast<size_t>(pr.n) * dtype_size(*out_type), k_out_poison);
    out = {r.out.data(), *out_type};
  }
  zero::GradIn g;
  g.data = grad.data();
  g.dtype = grad_type;
  g.scale = scale;
  zero::adam_step_cpu(pr.groups, pr.segments, r.p.data(), g, r.m.data(), r.v.data(), pr.n, out);
  return r;
}

struct DeviceAdam {
  DeviceArray<float> p, m, v;
  DeviceArray<unsigned char> grad, out, scratch;
  DeviceAdam(const AdamProblem& pr, const Bytes& g, const DType* out_type)
      : p(pr.p), m(pr.m), v(pr.v), grad(g),
        out(out_type ? static_cast<size_t>(pr.n) * dtype_size(*out_type) : 0),
        scratch(zero::cuda::adam_step_scratch_bytes(pr.groups.size(), pr.segments.size())) {
    out.poison();  // 0xFF bytes, as the host's k_out_poison: padding must stay so
  }
  void step(const AdamProblem& pr, DType grad_type, float scale, const DType* out_type, cudaStream_t stream) {
    zero::GradIn g;
    g.data = grad.data();
    g.dtype = grad_type;
    g.scale = scale;
    const zero::Copy16 copy{out_type ? out.data() : nullptr, out_type ? *out_type : DType::bf16};
    zero::cuda::adam_step(pr.groups, pr.segments, p.data(), g, m.data(), v.data(), pr.n, copy, scratch.data(), stream);
  }
  void check_against(const AdamResult& want) {
    CHECK(first_bit_difference(p.download(), want.p) == -1);
    CHECK(first_bit_difference(m.download(), want.m) == -1);
    CHECK(first_bit_difference(v.download(), want.v) == -1);
    CHECK(first_bit_difference(out.download(), want.out) == -1);
    CHECK(p.guards_intact());
    CHECK(m.guards_intact());
    CHECK(v.guards_intact());
    CHECK(grad.guards_intact());
    CHECK(out.guards_intact());
    CHECK(scratch.guards_intact());
  }
};

// Elements no segment covers.
std::vector<int64_t> padding_of(const AdamProblem& pr) {
  std::vector<bool> covered(static_cast<size_t>(pr.n), false);
  for (const auto& s : pr.segments)
    for (int64_t i = s.offset; i < s.offset + s.count; ++i) covered[static_cast<size_t>(i)] = true;
  std::vector<int64_t> gaps;
  for (int64_t i = 0; i < pr.n; ++i)
    if (!covered[static_cast<size_t>(i)]) gaps.push_back(i);
  return gaps;
}

}  // namespace

TEST_CASE("adam_step equals adam_step_cpu bit for bit: gradient dtypes, modes, bias correction, copies, steps") {
  Stream stream;
  const DType out_types[] = {DType::bf16, DType::f16, DType::f32};
  for (int64_t step : {int64_t{1}, int64_t{1000}}) {
    for (zero::AdamMode mode : {zero::AdamMode::adamw, zero::AdamMode::l2}) {
      for (zero::BiasCorrection bias : {zero::BiasCorrection::on, zero::BiasCorrection::off}) {
        // Three groups in 12 segments with gaps: the inline table.
        const AdamProblem pr(3 * k_norm_block + 17, 3, 12, step, mode, bias);
        const std::vector<int64_t> gaps = padding_of(pr);
        REQUIRE(!gaps.empty());
        for (DType grad_type : k_types) {
          const Bytes grad = encode_as(pr.grad_values, grad_type);
          for (int copy = 0; copy <= 3; ++copy) {
            const DType* out_type = copy < 3 ? &out_types[copy] : nullptr;
            const float scale = copy % 2 ? 1.0f / 1024.0f : 1.0f;
            INFO("step " << step << ", " << (mode == zero::AdamMode::adamw ? "adamw" : "l2") << ", bias correction "
                         << (bias == zero::BiasCorrection::on ? "on" : "off") << ", grad " << dtype_name(grad_type)
                         << ", copy " << (out_type ? dtype_name(*out_type) : "none") << ", scale " << scale);
            const AdamResult want = host_adam(pr, grad, grad_type, scale, out_type);
            DeviceAdam dev(pr, grad, out_type);
            dev.step(pr, grad_type, scale, out_type, stream.s);
            dev.check_against(want);
            // Padding untouched: the host leaves it so (checked above), and it is the input still.
            const std::vector<float> p = dev.p.download();
            for (int64_t i : {gaps.front(), gaps.back()}) CHECK(std::memcmp(&p[static_cast<size_t>(i)], &pr.p[static_cast<size_t>(i)], 4) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("adam_step over one group: one element, an odd size under one block, several blocks") {
  Stream stream;
  for (int64_t n : {int64_t{1}, int64_t{1001}, 3 * k_norm_block + 17}) {
    const AdamProblem pr(n, 1, 1, 7, zero::AdamMode::adamw, zero::BiasCorrection::on);
    const Bytes grad = encode_as(pr.grad_values, DType::bf16);
    const DType out_type = DType::bf16;
    INFO("n " << n);
    const AdamResult want = host_adam(pr, grad, DType::bf16, 0.5f, &out_type);
    DeviceAdam dev(pr, grad, &out_type);
    dev.step(pr, DType::bf16, 0.5f, &out_type, stream.s);
    dev.check_against(want);
  }
}

TEST_CASE("adam_step with a table too large for kernel parameters stages it through scratch, call after call") {
  Stream stream;
  // 10 groups and 600 segments: over the inline limits (8 groups, 160 segments) both ways.
  AdamProblem pr(3 * k_norm_block + 17, 10, 600, 1, zero::AdamMode::adamw, zero::BiasCorrection::on);
  REQUIRE(zero::cuda::adam_step_scratch_bytes(pr.groups.size(), pr.segments.size()) > 0);
  const Bytes grad = encode_as(pr.grad_values, DType::f32);
  const DType out_type = DType::f16;
  DeviceAdam dev(pr, grad, &out_type);
  // Three steps queued back to back with no wait between them, each with its own table (the
  // step counts and learning rates change): every copy must read the table of its own call.
  AdamProblem host = pr;
  for (int k = 0; k < 3; ++k) {
    for (auto& g : pr.groups) {
      g.step += 1;
      g.lr *= 0.5f;
    }
    dev.step(pr, DType::f32, 0.25f, &out_type, stream.s);
    host.groups = pr.groups;
    const AdamResult r = host_adam(host, grad, DType::f32, 0.25f, &out_type);
    host.p = r.p;
    host.m = r.m;
    host.v = r.v;
    if (k == 2) dev.check_against(r);
  }
  // More groups than 8 but few segments also takes the staged path.
  REQUIRE(zero::cuda::adam_step_scratch_bytes(9, 3) > 0);
  REQUIRE(zero::cuda::adam_step_scratch_bytes(8, 160) == 0);
}

TEST_CASE("adam_step rejects invalid hyper-parameters with the CPU Adam's message") {
  Stream stream;
  AdamProblem pr(100, 2, 3, 1, zero::AdamMode::adamw, zero::BiasCorrection::on);
  pr.groups[1].beta2 = 1.0f;
  const Bytes grad = encode_as(pr.grad_values, DType::f32);
  std::string cpu_message, gpu_message;
  try {
    host_adam(pr, grad, DType::f32, 1.0f, nullptr);
  } catch (const ConfigError& e) {
    cpu_message = e.what();
  }
  DeviceAdam dev(pr, grad, nullptr);
  try {
    dev.step(pr, DType::f32, 1.0f, nullptr, stream.s);
  } catch (const ConfigError& e) {
    gpu_message = e.what();
  }
  CHECK(gpu_message == "Adam betas[1] = 1 in parameter group 1 is invalid: betas must be in [0, 1); fix "
                       "optimizer.params.betas[1] in ds_config.json (or the scheduler that sets it)");
  CHECK(gpu_message == cpu_message);
  // Nothing was queued: the state is the input still.
  CHECK(dev.p.download() == pr.p);
}
