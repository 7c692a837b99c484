// The cuBLASLt matmul (model/cuda/kernels.hpp) against its CPU twins (model/ops_matmul.hpp,
// model/ops_gelu.hpp): forward with and without bias, with the GELU fused; backward accumulating
// into non-zero gradients, with dinp/dbias left out, with the GELU' fused; on odd shapes and the
// GPT-2 ones; through cuBLASLt and through our fallback kernels; determinism, guards, every output
// written, plans made once, no device allocation in the loop, and the usage errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "gpu/kernel_check.hpp"
#include "model/cuda/kernels.hpp"
#include "model/cuda/matmul_blas.hpp"
#include "model/ops_gelu.hpp"
#include "model/ops_matmul.hpp"

using namespace ds;
using namespace ds::test;
namespace mc = ds::model::cuda;

namespace {

struct Shape {
  int N, C, OC;
};

// Odd shapes (N = 1, 7, 64·3+5; C and OC not multiples of 8) and GPT-2's (124M: 768→2304, 768→3072,
// 3072→768; 1.5B head: 1600→50304 with a shorter N to keep the CPU oracle quick).
const std::vector<Shape> k_shapes = {{1, 64, 96},     {7, 13, 24},      {7, 24, 13},     {197, 40, 72},
                                     {197, 768, 2304}, {197, 768, 3072}, {197, 3072, 768}, {64, 1600, 50304}};

// A blocking stream: it orders after DeviceArray's cudaMemcpy/cudaMemset on the legacy stream.
struct Stream {
  cudaStream_t s = nullptr;
  Stream() { DS_CUDA_CHECK(cudaStreamCreate(&s)); }
  ~Stream() { cudaStreamDestroy(s); }
};

// rel_error bound: the dtype's, widened for long fp32 sums (error grows like sqrt(K) per element).
template <typename S>
double tolerance(int K) {
  return k_rel_tol<S> * std::max(1.0, std::sqrt(K / 1024.0));
}

template <typename S>
std::vector<float> widen(const std::vector<S>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_float(v[i]);
  return out;
}

template <typename S>
bool bitwise_equal(const std::vector<S>& a, const std::vector<S>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(S)) == 0;
}

// Inputs of one linear layer, on the host.
template <typename S>
struct Layer {
  Shape sh;
  std::vector<S> inp, weight, bias;
  explicit Layer(Shape s)
      : sh(s),
        inp(random_vector<S>(size_t(s.N) * s.C)),
        weight(random_vector<S>(size_t(s.OC) * s.C, 1.0f / std::sqrt(float(s.C)))),
        bias(random_vector<S>(s.OC, 0.5f)) {}
};

struct ForwardOptions {
  bool bias = true;
  bool gelu = false;
};

template <typename S>
void check_forward(mc::Blas& blas, Shape sh, ForwardOptions opt) {
  CAPTURE(type_name<S>(), sh.N, sh.C, sh.OC, opt.bias, opt.gelu);
  const Layer<S> L(sh);
  const size_t n_out = size_t(sh.N) * sh.OC;
  DeviceArray<S> inp(L.inp), weight(L.weight), bias(L.bias), out(n_out), gelu_out(n_out);
  out.poison();
  gelu_out.poison();
  mc::matmul_forward<S>(blas, out.data(), inp.data(), weight.data(), opt.bias ? bias.data() : nullptr, sh.N, sh.C,
                        sh.OC, opt.gelu ? gelu_out.data() : nullptr);

  std::vector<S> ref(n_out);
  model::matmul_forward_cpu<S>(ref.data(), L.inp.data(), L.weight.data(), opt.bias ? L.bias.data() : nullptr, 1, sh.N,
                               sh.C, sh.OC);
  const double err = rel_error(out.download(), ref);
  INFO("out rel_error " << err);
  CHECK(err <= tolerance<S>(sh.C));
  if (opt.gelu) {
    std::vector<S> ref_gelu(n_out);
    model::gelu_forward_cpu<S>(ref_gelu.data(), ref.data(), int64_t(n_out));
    const double gerr = rel_error(gelu_out.download(), ref_gelu);
    INFO("gelu_out rel_error " << gerr);
    CHECK(gerr <= tolerance<S>(sh.C));
  }
  CHECK(inp.guards_intact());
  CHECK(weight.guards_intact());
  CHECK(bias.guards_intact());
  CHECK(out.guards_intact());
  CHECK(gelu_out.guards_intact());
}

struct BackwardOptions {
  bool dinp = true;
  bool dbias = true;
  bool gelu = false;  // fused GELU': dinp is written as (dout · W) ⊙ gelu'(gelu_inp)
};

template <typename S>
void check_backward(mc::Blas& blas, Shape sh, BackwardOptions opt) {
  CAPTURE(type_name<S>(), sh.N, sh.C, sh.OC, opt.dinp, opt.dbias, opt.gelu);
  const Layer<S> L(sh);
  const size_t n_in = size_t(sh.N) * sh.C, n_w = size_t(sh.OC) * sh.C;
  const auto dout_h = random_vector<S>(size_t(sh.N) * sh.OC);
  const auto gelu_inp_h = random_vector<S>(n_in, 1.5f);
  // Non-zero starting gradients: the backward must add to them.
  const auto dinp0 = random_vector<S>(n_in), dweight0 = random_vector<S>(n_w), dbias0 = random_vector<S>(sh.OC);

  DeviceArray<S> inp(L.inp), weight(L.weight), dout(dout_h), gelu_inp(gelu_inp_h);
  DeviceArray<S> dinp(dinp0), dweight(dweight0), dbias(dbias0);
  DeviceArray<unsigned char> scratch(std::max<size_t>(1, mc::matmul_backward_scratch_bytes(sh.N, sh.C, sh.OC)));
  scratch.poison();             // the kernel must write every partial it reads
  if (opt.gelu) dinp.poison();  // written, not accumulated: must not read its old value
  mc::matmul_backward<S>(blas, opt.dinp ? dinp.data() : nullptr, dweight.data(), opt.dbias ? dbias.data() : nullptr,
                         dout.data(), inp.data(), weight.data(), sh.N, sh.C, sh.OC, scratch.data(),
                         opt.gelu ? gelu_inp.data() : nullptr);

  std::vector<S> ref_dinp = dinp0, ref_dweight = dweight0, ref_dbias = dbias0;
  if (opt.gelu) std::fill(ref_dinp.begin(), ref_dinp.end(), from_float<S>(0.0f));
  model::matmul_backward_cpu<S>(opt.dinp ? ref_dinp.data() : nullptr, ref_dweight.data(),
                                opt.dbias ? ref_dbias.data() : nullptr, dout_h.data(), L.inp.data(), L.weight.data(), 1,
                                sh.N, sh.C, sh.OC);

  const double werr = rel_error(dweight.download(), ref_dweight);
  INFO("dweight rel_error " << werr);
  CHECK(werr <= tolerance<S>(sh.N));
  if (opt.dinp && !opt.gelu) {
    const double err = rel_error(dinp.download(), ref_dinp);
    INFO("dinp rel_error " << err);
    CHECK(err <= tolerance<S>(sh.OC));
  }
  if (opt.dinp && opt.gelu) {  // dpre = (dout · W) ⊙ gelu'(x), written
    std::vector<float> ref_dpre(n_in, 0.0f);
    model::gelu_backward_cpu<float>(ref_dpre.data(), widen(gelu_inp_h).data(), widen(ref_dinp).data(), int64_t(n_in));
    const double err = rel_error(dinp.download(), ref_dpre);
    INFO("fused dinp rel_error " << err);
    CHECK(err <= tolerance<S>(sh.OC));
  }
  if (!opt.dinp) CHECK(bitwise_equal(dinp.download(), dinp0));  // not asked for: untouched
  if (opt.dbias) {
    const double err = rel_error(dbias.download(), ref_dbias);
    INFO("dbias rel_error " << err);
    CHECK(err <= tolerance<S>(sh.N));
  } else {
    CHECK(bitwise_equal(dbias.download(), dbias0));
  }
  for (const auto* a : {&inp, &weight, &dout, &gelu_inp, &dinp, &dweight, &dbias}) CHECK(a->guards_intact());
  CHECK(scratch.guards_intact());
}

}  // namespace

TEMPLATE_TEST_CASE("matmul forward matches the CPU twin with and without bias, on odd and GPT-2 shapes",
                   "[gpu][matmul]", float, bf16, f16) {
  Stream stream;
  mc::Blas blas(stream.s);
  for (const Shape& sh : k_shapes) {
    check_forward<TestType>(blas, sh, {.bias = true});
    check_forward<TestType>(blas, sh, {.bias = false});
  }
}

TEMPLATE_TEST_CASE("matmul forward with fused GELU gives the pre-activation and gelu of it",
                   "[gpu][matmul]", float, bf16, f16) {
  Stream stream;
  mc::Blas blas(stream.s);
  // OC = 13 and 24·… include shapes cuBLASLt's GELU epilogue refuses (aux leading dimension not a
  // multiple of 8): those run the GEMM and then our GELU kernel, with the same results.
  for (const Shape& sh : k_shapes) {
    check_forward<TestType>(blas, sh, {.bias = true, .gelu = true});
    check_forward<TestType>(blas, sh, {.bias = false, .gelu = true});
  }
}

TEMPLATE_TEST_CASE("matmul backward accumulates dinp, dweight and dbias like the CPU twin",
                   "[gpu][matmul]", float, bf16, f16) {
  Stream stream;
  mc::Blas blas(stream.s);
  for (const Shape& sh : k_shapes) check_backward<TestType>(blas, sh, {});
}

TEMPLATE_TEST_CASE("matmul backward leaves out dinp and dbias when they are null", "[gpu][matmul]", float, bf16,
                   f16) {
  Stream stream;
  mc::Blas blas(stream.s);
  for (const Shape& sh : {Shape{7, 13, 24}, Shape{197, 768, 2304}}) {
    check_backward<TestType>(blas, sh, {.dinp = false, .dbias = true});
    check_backward<TestType>(blas, sh, {.dinp = true, .dbias = false});
    check_backward<TestType>(blas, sh, {.dinp = false, .dbias = false});
  }
}

TEMPLATE_TEST_CASE("matmul backward with fused GELU' writes (dout·W)·gelu'(x) into dinp", "[gpu][matmul]", float,
                   bf16, f16) {
  Stream stream;
  mc::Blas blas(stream.s);
  // C = 13: cuBLASLt's DGELU refuses it, the GEMM then our multiply run instead.
  for (const Shape& sh : {Shape{1, 64, 96}, Shape{7, 13, 24}, Shape{197, 3072, 768}, Shape{197, 768, 3072}})
    check_backward<TestType>(blas, sh, {.gelu = true});
}

TEMPLATE_TEST_CASE("matmul fallback kernels (no cuBLASLt) match the CPU twin", "[gpu][matmul]", float, bf16, f16) {
  Stream stream;
  mc::Blas blas(stream.s);
  blas.impl().use_cublaslt = false;
  for (const Shape& sh : {Shape{1, 64, 96}, Shape{7, 13, 24}, Shape{197, 40, 72}, Shape{64, 768, 3072}}) {
    check_forward<TestType>(blas, sh, {.bias = true, .gelu = true});
    check_forward<TestType>(blas, sh, {.bias = false});
    check_backward<TestType>(blas, sh, {});
    check_backward<TestType>(blas, sh, {.gelu = true});
  }
  CHECK(blas.impl().heuristic_queries == 0);
}

TEMPLATE_TEST_CASE("matmul accepts pointers aligned only to their element size", "[gpu][matmul]", float, bf16,
                   f16) {
  using S = TestType;
  Stream stream;
  mc::Blas blas(stream.s);
  const Shape sh{37, 72, 96};
  const Layer<S> L(sh);
  const size_t n_out = size_t(sh.N) * sh.OC;
  // Each array one element longer; the operands start at element 1.
  const auto shifted = [](const std::vector<S>& v) {
    std::vector<S> out(v.size() + 1, from_float<S>(0.0f));
    std::copy(v.begin(), v.end(), out.begin() + 1);
    return out;
  };
  DeviceArray<S> inp(shifted(L.inp)), weight(shifted(L.weight)), bias(shifted(L.bias)), out(n_out + 1),
      gelu_out(n_out + 1);
  out.poison();
  gelu_out.poison();
  mc::matmul_forward<S>(blas, out.data() + 1, inp.data() + 1, weight.data() + 1, bias.data() + 1, sh.N, sh.C, sh.OC,
                        gelu_out.data() + 1);
  std::vector<S> ref(n_out), ref_gelu(n_out);
  model::matmul_forward_cpu<S>(ref.data(), L.inp.data(), L.weight.data(), L.bias.data(), 1, sh.N, sh.C, sh.OC);
  model::gelu_forward_cpu<S>(ref_gelu.data(), ref.data(), int64_t(n_out));
  auto got = out.download(), got_gelu = gelu_out.download();
  CHECK(std::isnan(to_float(got[0])));  // the element before the operand stays unwritten
  got.erase(got.begin());
  got_gelu.erase(got_gelu.begin());
  CHECK(rel_error(got, ref) <= tolerance<S>(sh.C));
  CHECK(rel_error(got_gelu, ref_gelu) <= tolerance<S>(sh.C));
  CHECK(out.guards_intact());
  CHECK(gelu_out.guards_intact());
}

TEMPLATE_TEST_CASE("matmul gives the same bits on every run", "[gpu][matmul]", float, bf16, f16) {
  using S = TestType;
  Stream stream;
  const Shape sh{197, 768, 3072};
  const Layer<S> L(sh);
  const size_t n_out = size_t(sh.N) * sh.OC, n_in = size_t(sh.N) * sh.C, n_w = size_t(sh.OC) * sh.C;
  const auto dout_h = random_vector<S>(n_out);
  const auto dinp0 = random_vector<S>(n_in), dweight0 = random_vector<S>(n_w), dbias0 = random_vector<S>(sh.OC);
  DeviceArray<S> inp(L.inp), weight(L.weight), bias(L.bias), dout(dout_h), out(n_out), gelu_out(n_out);
  DeviceArray<S> dinp(n_in), dweight(n_w), dbias(sh.OC), dpre(n_in);
  DeviceArray<unsigned char> scratch(mc::matmul_backward_scratch_bytes(sh.N, sh.C, sh.OC));
  struct Run {
    std::vector<S> out, gelu_out, dinp, dweight, dbias, dpre;
  };
  // Two Blas objects, each run twice: the plan and its algorithm are the same for the same key.
  std::vector<Run> runs;
  for (int b = 0; b < 2; ++b) {
    mc::Blas blas(stream.s);
    for (int r = 0; r < 2; ++r) {
      dinp.upload(dinp0), dweight.upload(dweight0), dbias.upload(dbias0);
      mc::matmul_forward<S>(blas, out.data(), inp.data(), weight.data(), bias.data(), sh.N, sh.C, sh.OC,
                            gelu_out.data());
      mc::matmul_backward<S>(blas, dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                             sh.N, sh.C, sh.OC, scratch.data());
      // The fused GELU' backward (any (N,C) array serves as the pre-activation: inp).
      mc::matmul_backward<S>(blas, dpre.data(), dweight.data(), nullptr, dout.data(), inp.data(), weight.data(), sh.N,
                             sh.C, sh.OC, scratch.data(), inp.data());
      runs.push_back({out.download(), gelu_out.download(), dinp.download(), dweight.download(), dbias.download(),
                      dpre.download()});
    }
  }
  for (size_t i = 1; i < runs.size(); ++i) {
    CAPTURE(i);
    CHECK(bitwise_equal(runs[i].out, runs[0].out));
    CHECK(bitwise_equal(runs[i].gelu_out, runs[0].gelu_out));
    CHECK(bitwise_equal(runs[i].dinp, runs[0].dinp));
    CHECK(bitwise_equal(runs[i].dweight, runs[0].dweight));
    CHECK(bitwise_equal(runs[i].dbias, runs[0].dbias));
    CHECK(bitwise_equal(runs[i].dpre, runs[0].dpre));
  }
}

TEST_CASE("matmul plans each shape once and allocates no device memory per call", "[gpu][matmul]") {
  using S = bf16;
  Stream stream;
  mc::Blas blas(stream.s);
  const Shape sh{256, 768, 3072};
  const Layer<S> L(sh);
  const size_t n_out = size_t(sh.N) * sh.OC, n_in = size_t(sh.N) * sh.C, n_w = size_t(sh.OC) * sh.C;
  DeviceArray<S> inp(L.inp), weight(L.weight), bias(L.bias), out(n_out), gelu_out(n_out), dout(n_out), dinp(n_in),
      dweight(n_w), dbias(sh.OC), dpre(n_in);
  DeviceArray<unsigned char> scratch(mc::matmul_backward_scratch_bytes(sh.N, sh.C, sh.OC));
  dinp.upload(std::vector<S>(n_in)), dweight.upload(std::vector<S>(n_w)), dbias.upload(std::vector<S>(sh.OC));
  dout.upload(random_vector<S>(n_out));
  const auto step = [&] {
    mc::matmul_forward<S>(blas, out.data(), inp.data(), weight.data(), bias.data(), sh.N, sh.C, sh.OC, gelu_out.data());
    mc::matmul_backward<S>(blas, dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                           sh.N, sh.C, sh.OC, scratch.data());
    mc::matmul_backward<S>(blas, dpre.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                           sh.N, sh.C, sh.OC, scratch.data(), inp.data());
  };
  step();  // plans, and loads cuBLASLt's kernels
  DS_CUDA_CHECK(cudaDeviceSynchronize());
  const size_t queries = blas.impl().heuristic_queries, routes = blas.impl().routes.size();
  CHECK(queries >= 1);  // cuBLASLt was asked
  CHECK(routes == 4);   // forward, dweight, dinp, dinp with GELU'
  size_t free_before = 0, free_after = 0, total = 0;
  DS_CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
  for (int i = 0; i < 5; ++i) step();
  DS_CUDA_CHECK(cudaDeviceSynchronize());
  DS_CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
  CHECK(blas.impl().heuristic_queries == queries);
  CHECK(blas.impl().routes.size() == routes);
  CHECK(free_after == free_before);
}

TEST_CASE("matmul rejects bad arguments with a message naming them", "[gpu][matmul]") {
  Stream stream;
  mc::Blas blas(stream.s);
  DeviceArray<float> a(64), b(64), c(64), d(64);
  float* p = a.data();
  REQUIRE_THROWS_WITH(mc::matmul_forward<float>(blas, p, b.data(), c.data(), nullptr, 0, 8, 8),
                      "matmul_forward: shape N=0, C=8, OC=8 is not a matmul shape; every dimension must be at least 1");
  REQUIRE_THROWS_AS(mc::matmul_forward<float>(blas, p, b.data(), c.data(), nullptr, 4, -1, 8), UsageError);
  REQUIRE_THROWS_WITH(mc::matmul_forward<float>(blas, nullptr, b.data(), c.data(), nullptr, 4, 4, 4),
                      "matmul_forward: out is null; pass a device pointer");
  REQUIRE_THROWS_WITH(mc::matmul_forward<float>(blas, p, b.data(), c.data(), nullptr, 4, 4, 4, p),
                      "matmul_forward: gelu_out is the same buffer as out; the pre-activation (out) and the "
                      "activation (gelu_out) need two buffers");
  REQUIRE_THROWS_WITH(mc::matmul_backward<float>(blas, p, b.data(), c.data(), d.data(), b.data(), c.data(), 4, 4, 4,
                                                 nullptr),
                      "matmul_backward: scratch is null but dbias is wanted; pass a device buffer of "
                      "matmul_backward_scratch_bytes(N, C, OC) bytes");
  REQUIRE_THROWS_WITH(mc::matmul_backward<float>(blas, nullptr, b.data(), nullptr, d.data(), b.data(), c.data(), 4, 4,
                                                 4, nullptr, a.data()),
                      "matmul_backward: gelu_inp is given but dinp is null; the fused GELU backward produces dinp, "
                      "so pass dinp or drop gelu_inp");
  REQUIRE_THROWS_WITH(mc::matmul_backward<float>(blas, p, b.data(), nullptr, d.data(), b.data(), c.data(), 4, 4, 4,
                                                 nullptr, p),
                      "matmul_backward: dinp is the same buffer as gelu_inp; the fused GELU backward reads the "
                      "pre-activation while it writes dinp, so they need two buffers");
  REQUIRE_THROWS_WITH(mc::matmul_backward<float>(blas, p, nullptr, nullptr, d.data(), b.data(), c.data(), 4, 4, 4,
                                                 nullptr),
                      "matmul_backward: dweight is null; pass a device pointer");
  CHECK(blas.impl().routes.empty());  // nothing was planned or queued for a rejected call
}

TEST_CASE("matmul_backward_scratch_bytes covers one fp32 partial per column per 256-row block", "[gpu][matmul]") {
  CHECK(mc::matmul_backward_scratch_bytes(1, 768, 3072) == 3072 * sizeof(float));
  CHECK(mc::matmul_backward_scratch_bytes(256, 768, 3072) == 3072 * sizeof(float));
  CHECK(mc::matmul_backward_scratch_bytes(257, 768, 3072) == 2 * 3072 * sizeof(float));
  CHECK(mc::matmul_backward_scratch_bytes(4096, 1600, 50304) == 16 * 50304 * sizeof(float));
}
