// The token + position embedding on the GPU against its CPU twin (model/ops_encoder.cpp). Both
// directions are the twin's operations in its order (lib/model/cuda/encoder.cu), so every storage
// type is checked for bitwise equality: the forward is one add per element; the backward sums each
// token's rows in (b,t) order through the EncoderIndex, and each position's rows over b, in fp32,
// and adds once — with a vocabulary of 5, tokens repeat hundreds of times, which is where a
// per-use rounding or an atomic's order would show.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "base/error.hpp"
#include "gpu/kernel_check.hpp"
#include "model/cuda/kernels.hpp"
#include "model/ops_encoder.hpp"

using namespace ds;
using namespace ds::test;
namespace mc = ds::model::cuda;

namespace {

constexpr cudaStream_t k_stream = nullptr;

struct Shape {
  int B, T, C, Vp, vocab;  // tokens are drawn from [0, vocab), vocab <= Vp (rows >= vocab stay unused)
};
// seq_len = T + 3 in every case, so wpe has rows no position uses.
const Shape k_shapes[] = {
    {1, 1, 7, 5, 5},      {2, 3, 7, 8, 5},       {3, 5, 768, 8, 5},   {4, 64, 768, 64, 5},
    {2, 33, 1600, 16, 5}, {8, 128, 1024, 8, 5},  {1, 1023, 9, 7, 5}, {4, 256, 768, 50304, 50257},
};

}  // namespace

TEMPLATE_TEST_CASE("encoder forward is bitwise the CPU twin's", "[gpu][encoder]", float, bf16, f16) {
  using S = TestType;
  for (const Shape& s : k_shapes) {
    INFO(type_name<S>() << " B=" << s.B << " T=" << s.T << " C=" << s.C << " Vp=" << s.Vp);
    const int seq_len = s.T + 3;
    const auto inp = random_tokens(size_t(s.B) * s.T, s.vocab);
    const auto wte = random_vector<S>(size_t(s.Vp) * s.C), wpe = random_vector<S>(size_t(seq_len) * s.C, 0.1f);
    std::vector<S> want(size_t(s.B) * s.T * s.C);
    model::encoder_forward_cpu(want.data(), inp.data(), wte.data(), wpe.data(), s.B, s.T, s.C);
    DeviceArray<int32_t> d_inp(inp);
    DeviceArray<S> d_wte(wte), d_wpe(wpe), d_out(want.size());
    d_out.poison();
    mc::encoder_forward(d_out.data(), d_inp.data(), d_wte.data(), d_wpe.data(), s.B, s.T, s.C, k_stream);
    CHECK(first_bit_difference(d_out.download(), want) == -1);
    CHECK(d_out.guards_intact());
  }
}

TEMPLATE_TEST_CASE("encoder backward accumulates repeated tokens bitwise as the CPU twin, run after run",
                   "[gpu][encoder]", float, bf16, f16) {
  using S = TestType;
  for (const Shape& s : k_shapes) {
    INFO(type_name<S>() << " B=" << s.B << " T=" << s.T << " C=" << s.C << " Vp=" << s.Vp);
    const int seq_len = s.T + 3;
    const auto inp = random_tokens(size_t(s.B) * s.T, s.vocab);
    const auto dout = random_vector<S>(size_t(s.B) * s.T * s.C);
    const auto dwte0 = random_vector<S>(size_t(s.Vp) * s.C), dwpe0 = random_vector<S>(size_t(seq_len) * s.C);
    auto want_wte = dwte0, want_wpe = dwpe0;
    model::encoder_backward_cpu(want_wte.data(), want_wpe.data(), dout.data(), inp.data(), s.B, s.T, s.C);

    const mc::EncoderIndex index = mc::build_encoder_index(inp.data(), s.B, s.T);
    DeviceArray<int32_t> d_tokens(index.tokens), d_offsets(index.offsets), d_rows(index.rows);
    DeviceArray<S> d_dout(dout);
    std::vector<S> first_wte, first_wpe;
    for (int run = 0; run < 2; ++run) {
      DeviceArray<S> d_wte(dwte0), d_wpe(dwpe0);
      mc::encoder_backward(d_wte.data(), d_wpe.data(), d_dout.data(), d_tokens.data(), d_offsets.data(), d_rows.data(),
                           static_cast<int>(index.tokens.size()), s.B, s.T, s.C, k_stream);
      const auto got_wte = d_wte.download(), got_wpe = d_wpe.download();
      // Bitwise over the whole arrays: unused tokens (rows >= vocab) and positions >= T untouched too.
      CHECK(first_bit_difference(got_wte, want_wte) == -1);
      CHECK(first_bit_difference(got_wpe, want_wpe) == -1);
      CHECK(d_wte.guards_intact());
      CHECK(d_wpe.guards_intact());
      if (run == 0) {
        first_wte = got_wte;
        first_wpe = got_wpe;
      } else {
        CHECK(first_bit_difference(got_wte, first_wte) == -1);
        CHECK(first_bit_difference(got_wpe, first_wpe) == -1);
      }
    }
  }
}

TEMPLATE_TEST_CASE("a NaN in dout reaches the token's and the position's gradient, and no other row",
                   "[gpu][encoder]", float, bf16, f16) {
  using S = TestType;
  const int B = 2, T = 4, C = 16, Vp = 6;
  const std::vector<int32_t> inp = {0, 1, 2, 1, 3, 3, 3, 0};
  auto dout = random_vector<S>(size_t(B) * T * C);
  dout[(1 * T + 2) * C + 5] = from_float<S>(std::numeric_limits<float>::quiet_NaN());  // b=1 t=2: token 3
  const mc::EncoderIndex index = mc::build_encoder_index(inp.data(), B, T);
  DeviceArray<int32_t> d_tokens(index.tokens), d_offsets(index.offsets), d_rows(index.rows);
  DeviceArray<S> d_dout(dout), d_wte(std::vector<S>(size_t(Vp) * C)), d_wpe(std::vector<S>(size_t(T) * C));
  mc::encoder_backward(d_wte.data(), d_wpe.data(), d_dout.data(), d_tokens.data(), d_offsets.data(), d_rows.data(),
                       static_cast<int>(index.tokens.size()), B, T, C, k_stream);
  const auto wte = d_wte.download(), wpe = d_wpe.download();
  CHECK(std::isnan(to_float(wte[3 * C + 5])));
  CHECK(std::isfinite(to_float(wte[1 * C + 5])));
  CHECK(std::isnan(to_float(wpe[2 * C + 5])));
  CHECK(std::isfinite(to_float(wpe[1 * C + 5])));
}

TEST_CASE("encoder launchers reject shapes they do not support", "[gpu][encoder]") {
  DeviceArray<float> a(16), b(16);
  DeviceArray<int32_t> tok(std::vector<int32_t>{0, 0});
  CHECK_THROWS_WITH(mc::encoder_forward(a.data(), tok.data(), b.data(), b.data(), 1, 2, 0, k_stream),
                    "model::cuda::encoder_forward: C=0 is not supported: C must be >= 1");
  CHECK_THROWS_WITH(mc::encoder_backward(a.data(), b.data(), a.data(), tok.data(), tok.data(), tok.data(), 3, 1, 2, 4,
                                         k_stream),
                    "model::cuda::encoder_backward: n_tokens=3 is not supported: an EncoderIndex of B*T=2 rows has "
                    "between 1 and B*T distinct tokens (pass index.tokens.size())");
}
