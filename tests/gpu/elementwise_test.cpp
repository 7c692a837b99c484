// GELU and the residual add on the GPU against their CPU twins (model/ops_gelu.cpp,
// model/ops_residual.cpp), every storage type, sizes that exercise the 128-bit path and its
// scalar tail (n = 1, 3, 1023, ...), and misaligned pointers that force the scalar path.
//
// What is exact and what is bounded (lib/model/cuda/elementwise.cu):
//   - residual: one fp32 add and one rounding per element, as the twin: bitwise equal.
//   - gelu: the twin's fp32 operations in its order, except tanhf — CUDA's tanhf (max 2 ulp) and
//     glibc's differ by an ulp or two on some inputs — so each element is bounded (gelu_bound,
//     gelu_grad_bound): 8 ulps of tanh carried through the formula, plus a rounding step of S
//     where a tanhf ulp moves a bf16/fp16 value across a rounding boundary.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "base/error.hpp"
#include "gpu/kernel_check.hpp"
#include "model/cuda/kernels.hpp"
#include "model/ops_gelu.hpp"
#include "model/ops_residual.hpp"

using namespace ds;
using namespace ds::test;
namespace mc = ds::model::cuda;

namespace {

constexpr cudaStream_t k_stream = nullptr;
const int64_t k_sizes[] = {1, 3, 7, 8, 1023, 4096 * 3 + 5, 1 << 20};

// Offset 0 keeps the arrays' 16-byte alignment (vector path); offset 1 element breaks it (scalar path).
const int k_offsets[] = {0, 1};

// A device copy of host at element `offset` of an array with `offset` extra leading elements.
template <typename T>
struct Placed {
  DeviceArray<T> array;
  int offset;
  Placed(const std::vector<T>& host, int off) : array(host.size() + off), offset(off) {
    std::vector<T> padded(host.size() + off);
    std::copy(host.begin(), host.end(), padded.begin() + off);
    array.upload(padded);
  }
  T* ptr() const { return array.data() + offset; }
  std::vector<T> download() const {
    auto all = array.download();
    return {all.begin() + offset, all.end()};
  }
  void poison() { array.poison(); }
};

// The error GELU may carry, element by element. CUDA's tanhf and glibc's differ by a few ulps of 1
// (2^-23 each) on some inputs; gelu = 0.5 x (1 + tanh u) turns that into ~|x| * 1e-7 absolute,
// which is large relative to the output where 1 + tanh u cancels (x < -3), so the bound is
// absolute in |x| (1e-6: 8 ulps of tanh), plus one rounding step of S on the result.
template <typename S>
double gelu_bound(S x, S want) {
  return 1e-6 * std::fabs(to_float(x)) + 2 * k_ulp<S> * std::fabs(to_float(want));
}
// gelu' = 0.5 (1 + th) + 0.5 x (1 - th²) du with du = sqrt(2/pi) (1 + 0.134 x²): a tanh error of
// e moves it by at most e (0.5 + |x| du); times |dout|, plus a rounding step of S on dinp.
template <typename S>
double gelu_grad_bound(S x, S dout, S want) {
  const double ax = std::fabs(to_float(x));
  return 1e-6 * (1.0 + ax * (1.0 + 0.14 * ax * ax)) * std::fabs(to_float(dout)) +
         2 * k_ulp<S> * std::fabs(to_float(want));
}

}  // namespace

TEMPLATE_TEST_CASE("residual forward is bitwise the CPU twin's for every size and alignment", "[gpu][elementwise]",
                   float, bf16, f16) {
  using S = TestType;
  for (int64_t n : k_sizes)
    for (int off : k_offsets) {
      INFO(type_name<S>() << " n=" << n << " offset=" << off);
      const auto a = random_vector<S>(n), b = random_vector<S>(n, 2.0f);
      std::vector<S> want(n);
      model::residual_forward_cpu(want.data(), a.data(), b.data(), n);
      Placed<S> da(a, off), db(b, off), out(std::vector<S>(n), off);
      out.poison();
      mc::residual_forward(out.ptr(), da.ptr(), db.ptr(), n, k_stream);
      CHECK(first_bit_difference(out.download(), want) == -1);
      CHECK(out.array.guards_intact());
      CHECK(da.array.guards_intact());
    }
}

TEMPLATE_TEST_CASE("residual backward adds dout to both gradients bitwise as the CPU twin, also when they alias",
                   "[gpu][elementwise]", float, bf16, f16) {
  using S = TestType;
  for (int64_t n : k_sizes)
    for (int off : k_offsets) {
      INFO(type_name<S>() << " n=" << n << " offset=" << off);
      const auto dout = random_vector<S>(n), g1 = random_vector<S>(n, 0.5f), g2 = random_vector<S>(n, 3.0f);
      auto want1 = g1, want2 = g2;
      model::residual_backward_cpu(want1.data(), want2.data(), dout.data(), n);
      Placed<S> dd(dout, off), d1(g1, off), d2(g2, off);
      mc::residual_backward(d1.ptr(), d2.ptr(), dd.ptr(), n, k_stream);
      CHECK(first_bit_difference(d1.download(), want1) == -1);
      CHECK(first_bit_difference(d2.download(), want2) == -1);
      CHECK(d1.array.guards_intact());
      CHECK(d2.array.guards_intact());

      // One buffer for both gradients (the model's residual stream): it receives dout twice.
      auto want_same = g1;
      model::residual_backward_cpu(want_same.data(), want_same.data(), dout.data(), n);
      Placed<S> same(g1, off);
      mc::residual_backward(same.ptr(), same.ptr(), dd.ptr(), n, k_stream);
      CHECK(first_bit_difference(same.download(), want_same) == -1);
    }
}

TEMPLATE_TEST_CASE("gelu forward matches the CPU twin within tanhf's ulps and writes every element",
                   "[gpu][elementwise]", float, bf16, f16) {
  using S = TestType;
  for (int64_t n : k_sizes)
    for (int off : k_offsets) {
      INFO(type_name<S>() << " n=" << n << " offset=" << off);
      const auto x = random_vector<S>(n, 2.0f);
      std::vector<S> want(n);
      model::gelu_forward_cpu(want.data(), x.data(), n);
      Placed<S> dx(x, off), out(std::vector<S>(n), off);
      out.poison();
      mc::gelu_forward(out.ptr(), dx.ptr(), n, k_stream);
      const auto got = out.download();
      const int64_t bad = first_out_of_bound(got, want, [&](size_t i) { return gelu_bound<S>(x[i], want[i]); });
      INFO("first element out of bound: " << bad);
      CHECK(bad == -1);
      CHECK(out.array.guards_intact());

      mc::gelu_forward(out.ptr(), dx.ptr(), n, k_stream);  // determinism: the same bits again
      CHECK(first_bit_difference(out.download(), got) == -1);
    }
}

TEMPLATE_TEST_CASE("gelu backward accumulates gelu'(x)·dout into a non-zero gradient as the CPU twin",
                   "[gpu][elementwise]", float, bf16, f16) {
  using S = TestType;
  for (int64_t n : k_sizes)
    for (int off : k_offsets) {
      INFO(type_name<S>() << " n=" << n << " offset=" << off);
      const auto x = random_vector<S>(n, 2.0f), dout = random_vector<S>(n), g0 = random_vector<S>(n, 0.5f);
      auto want = g0;
      model::gelu_backward_cpu(want.data(), x.data(), dout.data(), n);
      Placed<S> dx(x, off), dd(dout, off), dg(g0, off);
      mc::gelu_backward(dg.ptr(), dx.ptr(), dd.ptr(), n, k_stream);
      const auto got = dg.download();
      const int64_t bad = first_out_of_bound(
          got, want, [&](size_t i) { return gelu_grad_bound<S>(x[i], dout[i], want[i]); });
      INFO("first element out of bound: " << bad);
      CHECK(bad == -1);
      CHECK(dg.array.guards_intact());

      Placed<S> again(g0, off);  // determinism
      mc::gelu_backward(again.ptr(), dx.ptr(), dd.ptr(), n, k_stream);
      CHECK(first_bit_difference(again.download(), got) == -1);
    }
}

TEMPLATE_TEST_CASE("a NaN input gives a NaN output in gelu and residual, forward and backward", "[gpu][elementwise]",
                   float, bf16, f16) {
  using S = TestType;
  const int64_t n = 1000;
  auto x = random_vector<S>(n);
  x[17] = from_float<S>(std::numeric_limits<float>::quiet_NaN());
  const auto y = random_vector<S>(n);
  DeviceArray<S> dx(x), dy(y), out(n), grad{std::vector<S>(n)};
  mc::gelu_forward(out.data(), dx.data(), n, k_stream);
  auto got = out.download();
  CHECK(std::isnan(to_float(got[17])));
  CHECK(std::isfinite(to_float(got[16])));
  mc::gelu_backward(grad.data(), dx.data(), dy.data(), n, k_stream);
  CHECK(std::isnan(to_float(grad.download()[17])));
  mc::residual_forward(out.data(), dy.data(), dx.data(), n, k_stream);
  got = out.download();
  CHECK(std::isnan(to_float(got[17])));
  CHECK(std::isfinite(to_float(got[18])));
  DeviceArray<S> g1{std::vector<S>(n)}, g2{std::vector<S>(n)};
  mc::residual_backward(g1.data(), g2.data(), dx.data(), n, k_stream);
  CHECK(std::isnan(to_float(g1.download()[17])));
  CHECK(std::isnan(to_float(g2.download()[17])));
}

TEST_CASE("elementwise launchers do nothing for n = 0 and reject a negative n or a null pointer", "[gpu][elementwise]") {
  DeviceArray<float> a(4), b(4);
  a.poison();
  mc::gelu_forward(a.data(), b.data(), 0, k_stream);
  CHECK(std::isnan(a.download()[0]));  // untouched
  CHECK_THROWS_AS(mc::gelu_forward(a.data(), b.data(), -1, k_stream), UsageError);
  CHECK_THROWS_WITH(mc::residual_forward<float>(a.data(), nullptr, b.data(), 4, k_stream),
                    "model::cuda::residual_forward: a tensor pointer is null: pass device pointers");
}
