// The whole model on the engine contract: gradients against finite differences, the call order of
// ParamAccess and param lifetimes, the tied weight, determinism across thread counts, mixed
// precision, user errors, and an overfit run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "model/gpt.hpp"
#include "model/resident_params.hpp"
#include "model_test_support.hpp"
#include "base/error.hpp"
#include "base/parallel.hpp"

using namespace ds;
using namespace ds::model;
using ds::model::test::random_tokens;

namespace {

// Small enough for finite differences, with V < Vp (padding columns) and T < seq_len.
const char* k_small = "n_layer=2,n_head=2,n_embd=16,seq_len=8,vocab_size=40";

struct Batch {
  int B, T;
  std::vector<int32_t> inputs, targets;
};

Batch make_batch(const GptConfig& c, int B, int T, uint64_t seed) {
  Batch b{B, T, random_tokens(static_cast<size_t>(B) * T, c.vocab_size, seed),
          random_tokens(static_cast<size_t>(B) * T, c.vocab_size, seed + 1)};
  return b;
}

std::vector<float> grads_of(ResidentParams& rp, ParamId p) {
  const float* g = rp.grad(p).as<float>();
  return {g, g + rp.grad(p).numel};
}

// Loss as a double from the per-position losses (avoids the float rounding of the returned mean,
// which would dominate finite differences).
double loss_of(Gpt& gpt, ResidentParams& rp, const Batch& b) {
  gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  double sum = 0;
  for (float l : gpt.losses()) sum += l;
  return sum / static_cast<double>(gpt.losses().size());
}

}  // namespace

TEST_CASE("the loss of a freshly initialised model is about ln V", "[gpt]") {
  const GptConfig c = gpt_preset("tiny");
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(1);
  const Batch b = make_batch(c, 4, 64, 2);
  const float loss = gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  CHECK(std::abs(loss - std::log(256.0f)) < 0.1f);
}

TEST_CASE("every parameter tensor's gradient matches finite differences of the loss", "[gpt][gradcheck]") {
  const std::string spec = GENERATE(std::string(k_small), std::string("tiny"));  // padded vocabulary; the demo preset
  INFO("model " << spec);
  const GptConfig c = parse_model_spec(spec);
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(3);
  // Away from GPT-2's init, where the residual branches are nearly silent and biases are 0: every
  // path must carry weight for a wrong one to show.
  // Matrices get noise of std 0.5/sqrt(fan-in), so activations stay O(1) at any width; 1-D params 0.2.
  for (ParamId p = 0; p < static_cast<ParamId>(gpt.layout().params.size()); ++p) {
    const ParamInfo& info = gpt.layout().params[static_cast<size_t>(p)];
    const float std = info.shape.size() == 2 ? 0.5f / std::sqrt(static_cast<float>(info.shape[1])) : 0.2f;
    const std::vector<float> noise = ds::model::test::random_floats(static_cast<size_t>(info.numel), 33 + p, std);
    float* w = rp.param(p).as<float>();
    for (int64_t i = 0; i < info.numel; ++i) w[i] += noise[static_cast<size_t>(i)];
  }
  const Batch b = make_batch(c, 2, 7, 4);
  gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(rp, 1.0f);
  std::mt19937 gen(5);
  const double h = 1e-2;  // single-element step: float noise in the loss is ~1e-7
  for (ParamId p = 0; p < static_cast<ParamId>(gpt.layout().params.size()); ++p) {
    const ParamInfo& info = gpt.layout().params[static_cast<size_t>(p)];
    INFO(info.name);
    const std::vector<float> g = grads_of(rp, p);
    float* w = rp.param(p).as<float>();
    // The unit direction u = sign(g)/|sign(g)| over the whole tensor: the directional derivative
    // g·u = Σ|g|/|sign(g)| collects every element's gradient, so it stands well above float noise,
    // and a missing or wrong term changes it.
    std::vector<float> saved(w, w + info.numel), u(static_cast<size_t>(info.numel));
    double abs_sum = 0, nonzero = 0;
    for (size_t i = 0; i < u.size(); ++i) {
      u[i] = g[i] > 0 ? 1.0f : g[i] < 0 ? -1.0f : 0.0f;
      abs_sum += std::abs(g[i]), nonzero += u[i] != 0;
    }
    REQUIRE(nonzero > 0);
    for (float& x : u) x /= static_cast<float>(std::sqrt(nonzero));
    auto loss_along = [&](double step) {
      for (size_t i = 0; i < u.size(); ++i) w[i] = saved[i] + static_cast<float>(step) * u[i];
      const double l = loss_of(gpt, rp, b);
      std::copy(saved.begin(), saved.end(), w);
      return l;
    };
    const double eps = 1e-2;
    const double fd = (loss_along(eps) - loss_along(-eps)) / (2 * eps);
    CHECK(fd == Approx(abs_sum / std::sqrt(nonzero)).epsilon(0.01).margin(1e-4));
    // Single elements: the one with the largest gradient, and two at random.
    int64_t largest = 0;
    for (int64_t i = 1; i < info.numel; ++i)
      if (std::abs(g[static_cast<size_t>(i)]) > std::abs(g[static_cast<size_t>(largest)])) largest = i;
    std::uniform_int_distribution<int64_t> pick(0, info.numel - 1);
    for (int64_t i : {largest, pick(gen), pick(gen)}) {
      const float keep = w[i];
      w[i] = keep + static_cast<float>(h);
      const double l_up = loss_of(gpt, rp, b);
      w[i] = keep - static_cast<float>(h);
      const double l_down = loss_of(gpt, rp, b);
      w[i] = keep;
      const double fd_i = (l_up - l_down) / (2 * h);
      INFO("element " << i << " analytic " << g[static_cast<size_t>(i)] << " finite difference " << fd_i);
      CHECK(fd_i == Approx(g[static_cast<size_t>(i)]).epsilon(0.03).margin(5e-5));
    }
  }
}

namespace {

// A ParamAccess that behaves like a strict ZeRO-3 engine: a module's params exist only between its
// begin and end (fresh copies, poisoned with NaN at the end), gradients are handed out zeroed per
// module and collected at end_backward (later writes are lost). It records the calls, any access
// outside a module that reads the param, and each module's gradient contribution.
class StrictAccess final : public ParamAccess {
 public:
  explicit StrictAccess(ResidentParams& source) : m_src(source), m_layout(source.layout()) {}

  std::vector<std::string> calls, violations;
  std::map<std::pair<int, ParamId>, std::vector<float>> contributions;  // (module, param) → its grad

  void begin_forward(int m) override { open(m, "begin_forward", false); }
  void end_forward(int m) override { close(m, "end_forward"); }
  void begin_backward(int m) override { open(m, "begin_backward", true); }
  void end_backward(int m) override {
    for (auto& [p, buffer] : m_grads) contributions[{m, p}] = buffer;
    close(m, "end_backward");
  }

  TensorRef param(ParamId p) override {
    if (!reads(p)) violations.push_back("param " + m_layout.params[static_cast<size_t>(p)].name + " outside its modules");
    auto [it, fresh] = m_params.try_emplace(p);
    if (fresh) {
      const float* src = m_src.param(p).as<float>();
      it->second.assign(src, src + m_src.param(p).numel);
    }
    return {it->second.data(), DType::f32, static_cast<int64_t>(it->second.size())};
  }
  TensorRef grad(ParamId p) override {
    if (!reads(p) || !m_backward) violations.push_back("grad " + m_layout.params[static_cast<size_t>(p)].name + " outside a backward that reads it");
    auto [it, fresh] = m_grads.try_emplace(p);
    if (fresh) it->second.assign(static_cast<size_t>(m_layout.params[static_cast<size_t>(p)].numel), 0.0f);
    return {it->second.data(), DType::f32, static_cast<int64_t>(it->second.size())};
  }

  // Σ over modules of each param's contributions, in backward order (as an engine would add them).
  std::vector<float> total_grad(ParamId p) const {
    std::vector<float> total(static_cast<size_t>(m_layout.params[static_cast<size_t>(p)].numel), 0.0f);
    for (int m = static_cast<int>(m_layout.modules.size()) - 1; m >= 0; --m) {
      auto it = contributions.find({m, p});
      if (it == contributions.end()) continue;
      for (size_t i = 0; i < total.size(); ++i) total[i] += it->second[i];
    }
    return total;
  }

 private:
  bool reads(ParamId p) const {
    if (m_open < 0) return false;
    const int unit = m_layout.params[static_cast<size_t>(p)].unit;
    for (int u : m_layout.modules[static_cast<size_t>(m_open)].units)
      if (u == unit) return true;
    return false;
  }
  void open(int m, const char* what, bool backward) {
    calls.push_back(std::string(what) + "(" + std::to_string(m) + ")");
    if (m_open != -1) violations.push_back(std::string(what) + " while module " + std::to_string(m_open) + " is open");
    m_open = m, m_backward = backward;
  }
  void close(int m, const char* what) {
    calls.push_back(std::string(what) + "(" + std::to_string(m) + ")");
    if (m_open != m) violations.push_back(std::string(what) + " of a module that is not open");
    // Keep the memory (a stale pointer must not crash the test) but make it useless.
    for (auto& [p, buffer] : m_params) std::fill(buffer.begin(), buffer.end(), std::nanf(""));
    for (auto& [p, buffer] : m_grads) std::fill(buffer.begin(), buffer.end(), std::nanf(""));
    m_graveyard.push_back(std::move(m_params));
    m_graveyard.push_back(std::move(m_grads));
    m_params.clear(), m_grads.clear();
    m_open = -1;
  }

  ResidentParams& m_src;
  const ModelLayout& m_layout;
  int m_open = -1;
  bool m_backward = false;
  std::map<ParamId, std::vector<float>> m_params, m_grads;
  std::vector<std::map<ParamId, std::vector<float>>> m_graveyard;
};

}  // namespace

TEST_CASE("the model opens modules in order and touches a param only while its module is open", "[gpt][contract]") {
  const GptConfig c = parse_model_spec(k_small);
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(7);
  const Batch b = make_batch(c, 2, 8, 8);
  const float resident_loss = gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(rp, 1.0f);

  StrictAccess strict(rp);
  const float strict_loss = gpt.forward(strict, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(strict, 1.0f);
  CHECK(strict.violations.empty());
  for (const std::string& v : strict.violations) INFO(v);
  const std::vector<std::string> want = {
      "begin_forward(0)",  "end_forward(0)",  "begin_forward(1)",  "end_forward(1)",  "begin_forward(2)",
      "end_forward(2)",    "begin_forward(3)", "end_forward(3)",   "begin_backward(3)", "end_backward(3)",
      "begin_backward(2)", "end_backward(2)", "begin_backward(1)", "end_backward(1)", "begin_backward(0)",
      "end_backward(0)"};
  CHECK(strict.calls == want);
  // Same numbers as with every param resident, bit for bit: nothing was read after its release
  // (it would be NaN) and no gradient was written after its module ended (it would be lost).
  CHECK(strict_loss == resident_loss);
  for (ParamId p = 0; p < static_cast<ParamId>(gpt.layout().params.size()); ++p) {
    INFO(gpt.layout().params[static_cast<size_t>(p)].name);
    CHECK(strict.total_grad(p) == grads_of(rp, p));
  }
}

TEST_CASE("the tied wte's gradient is the sum of the embedding's and the head's contributions", "[gpt][contract]") {
  const GptConfig c = parse_model_spec(k_small);  // V=40 < Vp=64
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(9);
  Batch b = make_batch(c, 2, 8, 10);
  for (int32_t& t : b.inputs) t = t % 20;  // tokens 20..39 never appear as inputs
  gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(rp, 1.0f);
  StrictAccess strict(rp);
  gpt.forward(strict, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(strict, 1.0f);

  const ParamId wte = gpt.ids().wte;
  const int C = c.n_embd;
  const auto& from_head = strict.contributions.at({gpt.ids().head_module(), wte});
  const auto& from_embed = strict.contributions.at({GptIds::k_embed_module, wte});
  auto row_norm = [&](const std::vector<float>& g, int row) {
    double s = 0;
    for (int i = 0; i < C; ++i) s += std::abs(g[static_cast<size_t>(row * C + i)]);
    return s;
  };
  std::vector<bool> used(static_cast<size_t>(c.padded_vocab_size), false);
  for (int32_t t : b.inputs) used[static_cast<size_t>(t)] = true;
  for (int v = 0; v < c.padded_vocab_size; ++v) {
    INFO("row " << v);
    CHECK((row_norm(from_embed, v) > 0) == used[static_cast<size_t>(v)]);  // only rows of input tokens
    CHECK((row_norm(from_head, v) > 0) == (v < c.vocab_size));      // every real token, no padding row
  }
  std::vector<float> sum(from_head.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = from_head[i] + from_embed[i];
  CHECK(sum == grads_of(rp, wte));
}

TEST_CASE("backward adds into the gradients it is handed and scales with dloss", "[gpt]") {
  const GptConfig c = parse_model_spec(k_small);
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(11);
  const Batch b = make_batch(c, 2, 8, 12);
  gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(rp, 1.0f);
  const auto once = std::vector<float>(rp.all_grads().as<float>(), rp.all_grads().as<float>() + rp.all_grads().numel);
  gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(rp, 1.0f);
  const float* twice = rp.all_grads().as<float>();
  // Exactly twice, except the tied wte: its two uses add in a different order the second time,
  // (h + e) + h + e rather than 2(h + e).
  const TensorRef wte = rp.grad(gpt.ids().wte);
  const int64_t wte_begin = rp.offset(gpt.ids().wte), wte_end = wte_begin + wte.numel;
  for (int64_t i = 0; i < static_cast<int64_t>(once.size()); ++i) {
    if (i >= wte_begin && i < wte_end) REQUIRE(twice[i] == Approx(2.0f * once[static_cast<size_t>(i)]).epsilon(1e-5).margin(1e-9));
    else REQUIRE(twice[i] == 2.0f * once[static_cast<size_t>(i)]);
  }
  rp.zero_grad();
  gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  gpt.backward(rp, 4.0f);  // a power of two: scaling commutes with every rounding
  const float* scaled = rp.all_grads().as<float>();
  for (size_t i = 0; i < once.size(); ++i) REQUIRE(scaled[i] == 4.0f * once[i]);
}

TEMPLATE_TEST_CASE("forward and backward are bitwise identical with 1, 2 and 3 threads", "[gpt][determinism]", float, bf16) {
  using S = TestType;
  const GptConfig c = parse_model_spec("n_layer=2,n_head=4,n_embd=64,seq_len=32,vocab_size=100");
  const DType dt = dtype_of<S>();
  const Batch b = make_batch(c, 3, 32, 13);
  const int saved = num_threads();
  std::vector<float> losses;
  std::vector<std::vector<std::byte>> grads;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Gpt gpt(c, dt);
    ResidentParams rp(gpt.layout(), dt);
    rp.init(14);
    losses.push_back(gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T));
    gpt.backward(rp, 1.0f);
    const auto* g = static_cast<const std::byte*>(rp.all_grads().data);
    grads.emplace_back(g, g + rp.all_grads().bytes());
  }
  set_num_threads(saved);
  CHECK(losses[0] == losses[1]);
  CHECK(losses[0] == losses[2]);
  CHECK(grads[0] == grads[1]);
  CHECK(grads[0] == grads[2]);
}

TEMPLATE_TEST_CASE("bf16 and fp16 models track the fp32 model's loss and gradients", "[gpt][precision]", bf16, f16) {
  using S = TestType;
  const GptConfig c = parse_model_spec("n_layer=2,n_head=4,n_embd=64,seq_len=32,vocab_size=100");
  const Batch b = make_batch(c, 2, 32, 15);
  Gpt ref(c, DType::f32), low(c, dtype_of<S>());
  ResidentParams rp_ref(ref.layout(), DType::f32), rp_low(low.layout(), dtype_of<S>());
  rp_ref.init(16), rp_low.init(16);
  const float loss_ref = ref.forward(rp_ref, b.inputs.data(), b.targets.data(), b.B, b.T);
  const float loss_low = low.forward(rp_low, b.inputs.data(), b.targets.data(), b.B, b.T);
  CHECK(loss_low == Approx(loss_ref).epsilon(0.01));
  ref.backward(rp_ref, 1.0f);
  low.backward(rp_low, 1.0f);
  for (ParamId p = 0; p < static_cast<ParamId>(ref.layout().params.size()); ++p) {
    INFO(ref.layout().params[static_cast<size_t>(p)].name);
    const float* g = rp_ref.grad(p).as<float>();
    const S* h = rp_low.grad(p).template as<S>();
    double gg = 0, hh = 0, gh = 0;
    for (int64_t i = 0; i < rp_ref.grad(p).numel; ++i) {
      const double x = g[i], y = to_float(h[i]);
      REQUIRE(std::isfinite(y));
      gg += x * x, hh += y * y, gh += x * y;
    }
    CHECK(gh / std::sqrt(gg * hh) > 0.99);  // cosine similarity
    CHECK(std::sqrt(hh / gg) == Approx(1.0).epsilon(0.05));
  }
}

TEST_CASE("inference without targets gives the same logits and no loss", "[gpt]") {
  const GptConfig c = parse_model_spec(k_small);
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(17);
  const Batch b = make_batch(c, 2, 5, 18);
  const float loss = gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  const std::vector<float> with_targets = gpt.logits();
  REQUIRE(with_targets.size() == size_t{2} * 5 * c.padded_vocab_size);
  double mean = 0;
  for (float l : gpt.losses()) mean += l;
  CHECK(mean / 10 == Approx(loss).epsilon(1e-6));
  CHECK(gpt.forward(rp, b.inputs.data(), nullptr, b.B, b.T) == 0.0f);
  CHECK(gpt.logits() == with_targets);
}

TEST_CASE("changing B and T between calls gives the same results as a fresh model", "[gpt]") {
  const GptConfig c = parse_model_spec(k_small);
  ResidentParams rp(gpt_layout(c), DType::f32);
  rp.init(19);
  const Batch small = make_batch(c, 1, 3, 20), big = make_batch(c, 3, 8, 21);
  Gpt reused(c, DType::f32);
  reused.forward(rp, big.inputs.data(), big.targets.data(), big.B, big.T);
  const float reused_small = reused.forward(rp, small.inputs.data(), small.targets.data(), small.B, small.T);
  Gpt fresh(c, DType::f32);
  CHECK(reused_small == fresh.forward(rp, small.inputs.data(), small.targets.data(), small.B, small.T));
  CHECK(reused.forward(rp, big.inputs.data(), big.targets.data(), big.B, big.T) ==
        fresh.forward(rp, big.inputs.data(), big.targets.data(), big.B, big.T));
}

TEST_CASE("ignored targets are left out of the loss", "[gpt]") {
  const GptConfig c = parse_model_spec(k_small);
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(22);
  Batch b = make_batch(c, 1, 6, 23);
  gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  const std::vector<float> per_pos = gpt.losses();
  b.targets[1] = b.targets[4] = -1;
  const float loss = gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
  CHECK(loss == Approx((per_pos[0] + per_pos[2] + per_pos[3] + per_pos[5]) / 4.0).epsilon(1e-6));
}

TEST_CASE("bad batches are usage errors that name the value and the limit", "[gpt]") {
  const GptConfig c = parse_model_spec(k_small);
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  std::vector<int32_t> tok(20, 1);
  CHECK_THROWS_WITH(gpt.forward(rp, tok.data(), tok.data(), 1, 9),
                    "sequence length T=9 exceeds the model's seq_len 8: use a shorter sequence or a model with seq_len >= 9");
  CHECK_THROWS_WITH(gpt.forward(rp, tok.data(), tok.data(), 0, 4),
                    "micro-batch B=0 and sequence length T=4 must both be at least 1");
  tok[5] = 40;
  CHECK_THROWS_WITH(gpt.forward(rp, tok.data(), nullptr, 2, 4),
                    "input token id 40 at (b=1, t=1) is outside the model's vocabulary [0, 40): use a model whose "
                    "vocab_size covers the data's tokenizer");
  tok[5] = -1;
  CHECK_THROWS_AS(gpt.forward(rp, tok.data(), nullptr, 2, 4), UsageError);
  std::vector<int32_t> in(8, 3), tg(8, -1);
  CHECK_NOTHROW(gpt.forward(rp, in.data(), tg.data(), 2, 4));  // -1 targets are allowed
  tg[2] = -2;
  CHECK_THROWS_WITH(gpt.forward(rp, in.data(), tg.data(), 2, 4),
                    "target token id -2 at (b=0, t=2) is outside the model's vocabulary [0, 40) and is not -1 "
                    "(ignored): use a model whose vocab_size covers the data's tokenizer");
}

TEST_CASE("the activation estimate grows with the batch and shrinks with 16-bit storage", "[gpt]") {
  const GptConfig c = gpt_preset("gpt2");
  const int64_t one = Gpt::activation_bytes(c, DType::f32, 1, 1024), two = Gpt::activation_bytes(c, DType::f32, 2, 1024);
  CHECK(two == Approx(2.0 * static_cast<double>(one)).epsilon(0.001));
  CHECK(Gpt::activation_bytes(c, DType::bf16, 1, 1024) < one);
  // At least the tensors backward needs: per layer 16·B·T·C values plus the attention
  // probabilities (B·NH·T² fp32), and the logits.
  const int64_t BT = 1024, C = 768, floor_bytes = 12 * (16 * BT * C * 4 + 12 * BT * 1024 * 4) + BT * 50304 * 4;
  CHECK(one > floor_bytes);
  CHECK(one < 2 * floor_bytes);
}

TEST_CASE("a plain Adam loop overfits one repeated batch", "[gpt][train]") {
  const GptConfig c = parse_model_spec("n_layer=2,n_head=2,n_embd=32,seq_len=16,vocab_size=32");
  Gpt gpt(c, DType::f32);
  ResidentParams rp(gpt.layout(), DType::f32);
  rp.init(24);
  const Batch b = make_batch(c, 4, 16, 25);
  const int64_t n = rp.all_params().numel;
  std::vector<float> m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  float* w = rp.all_params().as<float>();
  const float* g = rp.all_grads().as<float>();
  const float lr = 3e-3f, b1 = 0.9f, b2 = 0.999f;
  float first = 0, last = 0;
  for (int step = 1; step <= 60; ++step) {
    rp.zero_grad();
    last = gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
    if (step == 1) first = last;
    gpt.backward(rp, 1.0f);
    const float c1 = 1 - std::pow(b1, static_cast<float>(step)), c2 = 1 - std::pow(b2, static_cast<float>(step));
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + 1e-8f);
    }
  }
  INFO("loss " << first << " -> " << last);
  CHECK(first == Approx(std::log(32.0f)).epsilon(0.05));
  CHECK(last < 0.5f * first);
}

TEST_CASE("activation checkpointing gives bitwise the same loss and gradients with less activation memory", "[gpt]") {
  // n_layer 3 so the recompute of a middle block reads the kept output of another block.
  const GptConfig c = parse_model_spec("n_layer=3,n_head=2,n_embd=16,seq_len=8,vocab_size=40");
  for (DType dtype : {DType::f32, DType::bf16}) {
    CAPTURE(dtype_name(dtype));
    ResidentParams rp(gpt_layout(c), dtype);
    rp.init(31);
    const Batch b = make_batch(c, 3, 7, 32);
    auto run = [&](bool checkpointing) {
      Gpt gpt(c, dtype);
      gpt.set_activation_checkpointing(checkpointing);
      rp.zero_grad();
      const float loss = gpt.forward(rp, b.inputs.data(), b.targets.data(), b.B, b.T);
      gpt.backward(rp, 1.0f);
      const TensorRef g = rp.all_grads();
      std::vector<std::byte> grads(static_cast<size_t>(g.numel) * dtype_size(dtype));
      std::memcpy(grads.data(), g.data, grads.size());
      return std::pair{loss, grads};
    };
    const auto [loss_plain, grads_plain] = run(false);
    const auto [loss_ckpt, grads_ckpt] = run(true);
    CHECK(std::memcmp(&loss_plain, &loss_ckpt, sizeof(float)) == 0);
    CHECK(grads_plain == grads_ckpt);
    // Some gradient is non-zero, so the comparison above compares something.
    CHECK(std::any_of(grads_plain.begin(), grads_plain.end(), [](std::byte x) { return x != std::byte{0}; }));
  }
  // Memory: every block but one keeps only its output (the logits, 0.4 GB here, stay).
  const GptConfig big = gpt_preset("gpt2");
  const int64_t plain = Gpt::activation_bytes(big, DType::bf16, 4, 1024, {.flash = true});
  const int64_t ckpt = Gpt::activation_bytes(big, DType::bf16, 4, 1024, {.flash = true, .checkpointing = true});
  CHECK(ckpt < plain / 2);
  Gpt gpt(big, DType::bf16);
  gpt.set_activation_checkpointing(true);
  CHECK(gpt.activation_bytes(4, 1024) == Gpt::activation_bytes(big, DType::bf16, 4, 1024, {.checkpointing = true}));
}
