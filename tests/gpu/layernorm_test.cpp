// LayerNorm on the GPU against its CPU twin (model/ops_layernorm.cpp), every storage type, C from
// 7 (scalar path) through GPT-2's 768..1600, N = 1, 3, 1023 rows.
//
// Not bitwise (lib/model/cuda/layernorm.cu): a row's sums run over 32 lanes and a butterfly, and
// dweight/dbias over fixed row blocks of 32 then over the blocks, where the twin sums left to right.
// fp32 outputs and the fp32 mean/rstd of every type are bounded by 1e-5 relative (hundreds of ulps
// of headroom for sums of 1600 terms); bf16/fp16 outputs by k_rel_tol<S> (an ulp of S where the
// fp32 values straddle a rounding boundary). Each run gives the same bits as the previous one.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "base/error.hpp"
#include "gpu/kernel_check.hpp"
#include "model/cuda/kernels.hpp"
#include "model/ops_layernorm.hpp"

using namespace ds;
using namespace ds::test;
namespace mc = ds::model::cuda;

namespace {

constexpr cudaStream_t k_stream = nullptr;
constexpr double k_stat_tol = 1e-5;  // mean, rstd (fp32 for every S) and fp32 increments

struct Shape {
  int N, C;
};
const Shape k_shapes[] = {{1, 7}, {3, 7}, {1, 768}, {3, 768}, {1023, 768}, {5, 1024}, {33, 1280}, {1023, 1600}, {7, 1601}};

}  // namespace

TEMPLATE_TEST_CASE("layernorm forward matches the CPU twin and writes every output, the same bits every run",
                   "[gpu][layernorm]", float, bf16, f16) {
  using S = TestType;
  for (const Shape& s : k_shapes) {
    INFO(type_name<S>() << " N=" << s.N << " C=" << s.C);
    const size_t n = size_t(s.N) * s.C;
    const auto x = random_vector<S>(n, 1.5f, 0.7f);
    const auto w = random_vector<S>(s.C, 0.2f, 1.0f), b = random_vector<S>(s.C, 0.3f);
    std::vector<S> want(n);
    std::vector<float> want_mean(s.N), want_rstd(s.N);
    model::layernorm_forward_cpu(want.data(), want_mean.data(), want_rstd.data(), x.data(), w.data(), b.data(), 1, s.N,
                                 s.C);
    DeviceArray<S> dx(x), dw(w), db(b), out(n);
    DeviceArray<float> mean(s.N), rstd(s.N);
    out.poison();
    mean.poison();
    rstd.poison();
    mc::layernorm_forward(out.data(), mean.data(), rstd.data(), dx.data(), dw.data(), db.data(), s.N, s.C, k_stream);
    const auto got = out.download();
    const auto got_mean = mean.download(), got_rstd = rstd.download();
    CHECK(rel_error(got, want) < k_rel_tol<S>);
    // A row's mean may be near 0 while its values are not: bound its error by the row's scale.
    const int64_t bad_mean = first_out_of_bound(got_mean, want_mean, [&](size_t row) {
      double abs_sum = 0;
      for (int c = 0; c < s.C; ++c) abs_sum += std::fabs(to_float(x[row * s.C + c]));
      return k_stat_tol * std::max<double>(std::fabs(want_mean[row]), abs_sum / s.C);
    });
    INFO("first mean out of bound: " << bad_mean);
    CHECK(bad_mean == -1);
    CHECK(rel_error(got_rstd, want_rstd) < k_stat_tol);
    CHECK(out.guards_intact());
    CHECK(mean.guards_intact());
    CHECK(rstd.guards_intact());

    mc::layernorm_forward(out.data(), mean.data(), rstd.data(), dx.data(), dw.data(), db.data(), s.N, s.C, k_stream);
    CHECK(first_bit_difference(out.download(), got) == -1);
    CHECK(first_bit_difference(mean.download(), got_mean) == -1);
    CHECK(first_bit_difference(rstd.download(), got_rstd) == -1);
  }
}

TEMPLATE_TEST_CASE("layernorm backward accumulates dinp, dweight and dbias as the CPU twin, the same bits every run",
                   "[gpu][layernorm]", float, bf16, f16) {
  using S = TestType;
  for (const Shape& s : k_shapes) {
    INFO(type_name<S>() << " N=" << s.N << " C=" << s.C);
    const size_t n = size_t(s.N) * s.C;
    const auto x = random_vector<S>(n, 1.5f, 0.7f), dout = random_vector<S>(n);
    const auto w = random_vector<S>(s.C, 0.2f, 1.0f), b = random_vector<S>(s.C, 0.3f);
    const auto dinp0 = random_vector<S>(n, 0.5f), dw0 = random_vector<S>(s.C), db0 = random_vector<S>(s.C);
    // mean and rstd from the CPU forward: both sides' backward then read the same statistics.
    std::vector<S> y(n);
    std::vector<float> m(s.N), r(s.N);
    model::layernorm_forward_cpu(y.data(), m.data(), r.data(), x.data(), w.data(), b.data(), 1, s.N, s.C);
    auto want_dinp = dinp0, want_dw = dw0, want_db = db0;
    model::layernorm_backward_cpu(want_dinp.data(), want_dw.data(), want_db.data(), dout.data(), x.data(), w.data(),
                                  m.data(), r.data(), 1, s.N, s.C);

    DeviceArray<S> d_x(x), d_dout(dout), d_w(w);
    DeviceArray<float> d_m(m), d_r(r);
    const size_t scratch_bytes = mc::layernorm_backward_scratch_bytes(s.N, s.C);
    REQUIRE(scratch_bytes >= 2 * sizeof(float) * s.C);
    DeviceArray<unsigned char> scratch(scratch_bytes);
    std::vector<S> first_dinp, first_dw, first_db;
    for (int run = 0; run < 2; ++run) {
      scratch.poison();  // every partial is written before it is read
      DeviceArray<S> d_dinp(dinp0), d_dw(dw0), d_db(db0);
      mc::layernorm_backward(d_dinp.data(), d_dw.data(), d_db.data(), d_dout.data(), d_x.data(), d_w.data(), d_m.data(),
                             d_r.data(), s.N, s.C, scratch.data(), k_stream);
      const auto got_dinp = d_dinp.download(), got_dw = d_dw.download(), got_db = d_db.download();
      CHECK(rel_error(got_dinp, want_dinp) < k_rel_tol<S>);
      CHECK(rel_error(got_dw, want_dw) < k_rel_tol<S>);
      CHECK(rel_error(got_db, want_db) < k_rel_tol<S>);
      if constexpr (std::is_same_v<S, float>) {  // what was added, not only the totals
        CHECK(rel_error(increments(got_dinp, dinp0), increments(want_dinp, dinp0)) < k_stat_tol);
        CHECK(rel_error(increments(got_dw, dw0), increments(want_dw, dw0)) < k_stat_tol);
        CHECK(rel_error(increments(got_db, db0), increments(want_db, db0)) < k_stat_tol);
      }
      CHECK(d_dinp.guards_intact());
      CHECK(d_dw.guards_intact());
      CHECK(d_db.guards_intact());
      CHECK(scratch.guards_intact());
      if (run == 0) {
        first_dinp = got_dinp;
        first_dw = got_dw;
        first_db = got_db;
      } else {
        CHECK(first_bit_difference(got_dinp, first_dinp) == -1);
        CHECK(first_bit_difference(got_dw, first_dw) == -1);
        CHECK(first_bit_difference(got_db, first_db) == -1);
      }
    }
  }
}

TEMPLATE_TEST_CASE("a NaN in a layernorm row makes that row NaN and leaves the others finite", "[gpu][layernorm]",
                   float, bf16, f16) {
  using S = TestType;
  const int N = 4, C = 768;
  auto x = random_vector<S>(size_t(N) * C);
  x[2 * C + 100] = from_float<S>(std::numeric_limits<float>::quiet_NaN());
  const auto w = random_vector<S>(C, 0.2f, 1.0f), b = random_vector<S>(C);
  DeviceArray<S> dx(x), dw(w), db(b), out(x.size());
  DeviceArray<float> mean(N), rstd(N);
  mc::layernorm_forward(out.data(), mean.data(), rstd.data(), dx.data(), dw.data(), db.data(), N, C, k_stream);
  const auto got = out.download();
  CHECK(std::isnan(to_float(got[2 * C + 7])));
  CHECK(std::isnan(mean.download()[2]));
  CHECK(std::isfinite(to_float(got[1 * C + 7])));
  CHECK(std::isfinite(to_float(got[3 * C + 100])));
}

TEST_CASE("layernorm launchers reject shapes they do not support", "[gpu][layernorm]") {
  DeviceArray<float> a(16);
  CHECK_THROWS_WITH(mc::layernorm_forward(a.data(), a.data(), a.data(), a.data(), a.data(), a.data(), 2, 0, k_stream),
                    "model::cuda::layernorm_forward: C=0 is not supported: C must be >= 1");
  CHECK_THROWS_WITH(mc::layernorm_backward(a.data(), a.data(), a.data(), a.data(), a.data(), a.data(), a.data(),
                                           a.data(), 2, 8, nullptr, k_stream),
                    "model::cuda::layernorm_backward: scratch is null: pass a device pointer");
  CHECK(mc::layernorm_backward_scratch_bytes(33, 768) == 2 * 2 * 768 * sizeof(float));  // 2 row blocks of 32
}
