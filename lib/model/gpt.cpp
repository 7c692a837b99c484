#include "model/gpt.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "model/ops.hpp"
#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::model {
namespace {

// Byte offsets of every buffer forward and backward use for one (B,T), each 64-byte aligned,
// all in one allocation. Activations kept for backward first, then scratch.
struct Plan {
  struct Layer {
    size_t ln1, ln1_mean, ln1_rstd;  // ln1 (B,T,C); stats (B,T) fp32
    size_t qkv;                      // (B,T,3C)
    size_t att;                      // (B,NH,T,T) fp32 probabilities
    size_t atty;                     // (B,T,C) attention output, heads side by side
    size_t res2;                     // (B,T,C) residual after attention
    size_t ln2, ln2_mean, ln2_rstd;  // as ln1
    size_t fch, fch_gelu;            // (B,T,4C) before and after GELU
    size_t res3;                     // (B,T,C) block output (next block's input)
  };
  size_t encoded = 0;  // (B,T,C) embed output, block 0's input
  std::vector<Layer> layers;
  size_t lnf = 0, lnf_mean = 0, lnf_rstd = 0;  // (B,T,C), (B,T), (B,T)
  size_t logits = 0;                          // (B,T,Vp)
  size_t losses = 0;                          // (B,T) fp32
  size_t proj = 0;                            // (B,T,C) scratch: c_proj outputs before the residual add
  // Gradients of activations; one layer's worth, reused by every layer.
  size_t dres = 0;       // (B,T,C) the residual stream's gradient, flowing down through the blocks
  size_t dln = 0;        // (B,T,C) gradient of a LayerNorm output (ln_1, ln_2, ln_f)
  size_t dqkv = 0;       // (B,T,3C)
  size_t datty = 0;      // (B,T,C)
  size_t dfch = 0, dfch_gelu = 0;  // (B,T,4C)
  size_t dlogits = 0;    // (B,T,Vp)
  size_t tokens = 0;     // inputs and targets (B,T) int32 each, copied from the caller
  size_t total = 0;
};

Plan make_plan(const GptConfig& c, DType dtype, int B, int T) {
  Plan p;
  size_t cursor = 0;
  auto take = [&](int64_t elems, size_t elem_bytes) {
    const size_t at = cursor;
    cursor += (static_cast<size_t>(elems) * elem_bytes + 63) / 64 * 64;
    return at;
  };
  const size_t s = dtype_size(dtype), f = sizeof(float);
  const int64_t BT = int64_t{B} * T, C = c.n_embd, Vp = c.padded_vocab_size;
  p.encoded = take(BT * C, s);
  for (int l = 0; l < c.n_layer; ++l) {
    Plan::Layer L;
    L.ln1 = take(BT * C, s), L.ln1_mean = take(BT, f), L.ln1_rstd = take(BT, f);
    L.qkv = take(BT * 3 * C, s);
    L.att = take(int64_t{B} * c.n_head * T * T, f);
    L.atty = take(BT * C, s);
    L.res2 = take(BT * C, s);
    L.ln2 = take(BT * C, s), L.ln2_mean = take(BT, f), L.ln2_rstd = take(BT, f);
    L.fch = take(BT * 4 * C, s), L.fch_gelu = take(BT * 4 * C, s);
    L.res3 = take(BT * C, s);
    p.layers.push_back(L);
  }
  p.lnf = take(BT * C, s), p.lnf_mean = take(BT, f), p.lnf_rstd = take(BT, f);
  p.logits = take(BT * Vp, s);
  p.losses = take(BT, f);
  p.proj = take(BT * C, s);
  p.dres = take(BT * C, s);
  p.dln = take(BT * C, s);
  p.dqkv = take(BT * 3 * C, s);
  p.datty = take(BT * C, s);
  p.dfch = take(BT * 4 * C, s), p.dfch_gelu = take(BT * 4 * C, s);
  p.dlogits = take(BT * Vp, s);
  p.tokens = take(2 * BT, sizeof(int32_t));
  p.total = cursor;
  return p;
}

}  // namespace

struct Gpt::Activations {
  int B = 0, T = 0;
  Plan plan;
  std::vector<std::byte> memory;
  bool have_targets = false;
  bool backward_ready = false;  // a forward with targets ran and its backward has not

  template <typename X>
  X* at(size_t offset) {
    return reinterpret_cast<X*>(memory.data() + offset);
  }
  template <typename S>
  void zero(size_t offset, int64_t elems) {
    std::memset(memory.data() + offset, 0, static_cast<size_t>(elems) * sizeof(S));
  }
  int32_t* inputs() { return at<int32_t>(plan.tokens); }
  int32_t* targets() { return at<int32_t>(plan.tokens) + int64_t{B} * T; }
};

Gpt::Gpt(GptConfig config, DType compute_dtype)
    : m_config(std::move(config)), m_dtype(compute_dtype), m_layout(gpt_layout(m_config)), m_ids(gpt_ids(m_config)),
      m_acts(std::make_unique<Activations>()) {}

Gpt::~Gpt() = default;
Gpt::Gpt(Gpt&&) noexcept = default;
Gpt& Gpt::operator=(Gpt&&) noexcept = default;

int64_t Gpt::activation_bytes(const GptConfig& config, DType dtype, int B, int T) {
  return static_cast<int64_t>(make_plan(config, dtype, B, T).total);
}

namespace {

void check_tokens(const int32_t* tokens, int64_t n, int T, int vocab, const char* what, bool allow_ignore) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t tok = tokens[i];
    if (tok >= 0 && tok < vocab) continue;
    if (allow_ignore && tok == k_ignore_target) continue;
    throw UsageError(std::string(what) + " token id " + std::to_string(tok) + " at (b=" + std::to_string(i / T) +
                     ", t=" + std::to_string(i % T) + ") is outside the model's vocabulary [0, " + std::to_string(vocab) +
                     ")" + (allow_ignore ? " and is not -1 (ignored)" : "") +
                     ": use a model whose vocab_size covers the data's tokenizer");
  }
}

}  // namespace

float Gpt::forward(ParamAccess& params, const int32_t* inputs, const int32_t* targets, int B, int T) {
  if (B < 1 || T < 1)
    throw UsageError("micro-batch B=" + std::to_string(B) + " and sequence length T=" + std::to_string(T) +
                     " must both be at least 1");
  if (T > m_config.seq_len)
    throw UsageError("sequence length T=" + std::to_string(T) + " exceeds the model's seq_len " +
                     std::to_string(m_config.seq_len) + ": use a shorter sequence or a model with seq_len >= " +
                     std::to_string(T));
  const int64_t BT = int64_t{B} * T;
  check_tokens(inputs, BT, T, m_config.vocab_size, "input", false);
  if (targets) check_tokens(targets, BT, T, m_config.vocab_size, "target", true);

  Activations& a = *m_acts;
  if (a.B != B || a.T != T) {
    a.plan = make_plan(m_config, m_dtype, B, T);
    if (a.memory.size() < a.plan.total) a.memory = std::vector<std::byte>(a.plan.total);
    a.B = B, a.T = T;
  }
  std::memcpy(a.inputs(), inputs, static_cast<size_t>(BT) * sizeof(int32_t));
  if (targets) std::memcpy(a.targets(), targets, static_cast<size_t>(BT) * sizeof(int32_t));
  a.have_targets = targets != nullptr;
  a.backward_ready = false;
  const float loss = visit_dtype(m_dtype, [&](auto zero) { return forward_impl<decltype(zero)>(params); });
  a.backward_ready = a.have_targets;
  return loss;
}

void Gpt::backward(ParamAccess& params, float dloss) {
  DS_CHECK(m_acts->backward_ready, "Gpt::backward needs a forward with targets first (and runs once per forward)");
  visit_dtype(m_dtype, [&](auto zero) { backward_impl<decltype(zero)>(params, dloss); });
  m_acts->backward_ready = false;
}

TensorRef Gpt::logits() const {
  const Activations& a = *m_acts;
  DS_CHECK(a.B > 0, "no forward has run");
  return {const_cast<std::byte*>(a.memory.data()) + a.plan.logits, m_dtype,
          int64_t{a.B} * a.T * m_config.padded_vocab_size};
}

std::span<const float> Gpt::losses() const {
  const Activations& a = *m_acts;
  DS_CHECK(a.B > 0, "no forward has run");
  return {reinterpret_cast<const float*>(a.memory.data() + a.plan.losses), static_cast<size_t>(a.B) * a.T};
}

namespace {

// Reads params / grads of the module that is open, checking sizes against the layout.
template <typename S>
struct Access {
  ParamAccess& params;
  const ModelLayout& layout;
  const S* param(ParamId p) const { return checked(params.param(p), p).template as<S>(); }
  S* grad(ParamId p) const { return checked(params.grad(p), p).template as<S>(); }
  TensorRef checked(TensorRef t, ParamId p) const {
    DS_CHECK(t.numel == layout.params[static_cast<size_t>(p)].numel, layout.params[static_cast<size_t>(p)].name,
             " handed out with ", t.numel, " elements");
    return t;
  }
};

}  // namespace

template <typename S>
float Gpt::forward_impl(ParamAccess& params) {
  Activations& a = *m_acts;
  const Plan& p = a.plan;
  const Access<S> w{params, m_layout};
  const int B = a.B, T = a.T, C = m_config.n_embd, NH = m_config.n_head;
  const int V = m_config.vocab_size, Vp = m_config.padded_vocab_size;
  const int64_t BTC = int64_t{B} * T * C;

  params.begin_forward(GptIds::k_embed_module);
  S* x = a.at<S>(p.encoded);
  encoder_forward_cpu(x, a.inputs(), w.param(m_ids.wte), w.param(m_ids.wpe), B, T, C);
  params.end_forward(GptIds::k_embed_module);

  for (int l = 0; l < m_config.n_layer; ++l) {
    const Plan::Layer& L = p.layers[static_cast<size_t>(l)];
    auto id = [&](BlockParam bp) { return m_ids.block(l, bp); };
    S* proj = a.at<S>(p.proj);
    params.begin_forward(GptIds::block_module(l));
    // attention branch: res2 = x + c_proj(attention(c_attn(ln_1(x))))
    layernorm_forward_cpu(a.at<S>(L.ln1), a.at<float>(L.ln1_mean), a.at<float>(L.ln1_rstd), x,
                          w.param(id(BlockParam::ln_1_weight)), w.param(id(BlockParam::ln_1_bias)), B, T, C);
    matmul_forward_cpu(a.at<S>(L.qkv), a.at<S>(L.ln1), w.param(id(BlockParam::attn_c_attn_weight)),
                       w.param(id(BlockParam::attn_c_attn_bias)), B, T, C, 3 * C);
    attention_forward_cpu(a.at<S>(L.atty), a.at<float>(L.att), a.at<S>(L.qkv), B, T, C, NH);
    matmul_forward_cpu(proj, a.at<S>(L.atty), w.param(id(BlockParam::attn_c_proj_weight)),
                       w.param(id(BlockParam::attn_c_proj_bias)), B, T, C, C);
    residual_forward_cpu(a.at<S>(L.res2), x, proj, BTC);
    // MLP branch: res3 = res2 + c_proj(gelu(c_fc(ln_2(res2))))
    layernorm_forward_cpu(a.at<S>(L.ln2), a.at<float>(L.ln2_mean), a.at<float>(L.ln2_rstd), a.at<S>(L.res2),
                          w.param(id(BlockParam::ln_2_weight)), w.param(id(BlockParam::ln_2_bias)), B, T, C);
    matmul_forward_cpu(a.at<S>(L.fch), a.at<S>(L.ln2), w.param(id(BlockParam::mlp_c_fc_weight)),
                       w.param(id(BlockParam::mlp_c_fc_bias)), B, T, C, 4 * C);
    gelu_forward_cpu(a.at<S>(L.fch_gelu), a.at<S>(L.fch), 4 * BTC);
    matmul_forward_cpu(proj, a.at<S>(L.fch_gelu), w.param(id(BlockParam::mlp_c_proj_weight)),
                       w.param(id(BlockParam::mlp_c_proj_bias)), B, T, 4 * C, C);
    residual_forward_cpu(a.at<S>(L.res3), a.at<S>(L.res2), proj, BTC);
    params.end_forward(GptIds::block_module(l));
    x = a.at<S>(L.res3);
  }

  params.begin_forward(m_ids.head_module());
  layernorm_forward_cpu(a.at<S>(p.lnf), a.at<float>(p.lnf_mean), a.at<float>(p.lnf_rstd), x,
                        w.param(m_ids.ln_f_weight()), w.param(m_ids.ln_f_bias()), B, T, C);
  matmul_forward_cpu(a.at<S>(p.logits), a.at<S>(p.lnf), w.param(m_ids.wte), static_cast<const S*>(nullptr), B, T, C, Vp);
  float loss = 0.0f;
  if (a.have_targets) {
    loss = softmax_xent_forward_cpu(a.at<float>(p.losses), a.at<S>(p.logits), a.targets(), B, T, V, Vp);
  } else {
    std::memset(a.at<float>(p.losses), 0, static_cast<size_t>(B) * T * sizeof(float));
  }
  params.end_forward(m_ids.head_module());
  return loss;
}

template <typename S>
void Gpt::backward_impl(ParamAccess& params, float dloss) {
  Activations& a = *m_acts;
  const Plan& p = a.plan;
  const Access<S> w{params, m_layout};
  const int B = a.B, T = a.T, C = m_config.n_embd, NH = m_config.n_head, L = m_config.n_layer;
  const int V = m_config.vocab_size, Vp = m_config.padded_vocab_size;
  const int64_t BTC = int64_t{B} * T * C;
  S* dres = a.at<S>(p.dres);
  S* dln = a.at<S>(p.dln);
  auto block_input = [&](int l) { return l == 0 ? a.at<S>(p.encoded) : a.at<S>(p.layers[static_cast<size_t>(l - 1)].res3); };

  params.begin_backward(m_ids.head_module());
  softmax_xent_backward_cpu(a.at<S>(p.dlogits), a.at<S>(p.logits), a.targets(), dloss, B, T, V, Vp);
  a.zero<S>(p.dln, BTC);
  matmul_backward_cpu(dln, w.grad(m_ids.wte), static_cast<S*>(nullptr), a.at<S>(p.dlogits), a.at<S>(p.lnf),
                      w.param(m_ids.wte), B, T, C, Vp);
  a.zero<S>(p.dres, BTC);
  layernorm_backward_cpu(dres, w.grad(m_ids.ln_f_weight()), w.grad(m_ids.ln_f_bias()), dln, block_input(L),
                         w.param(m_ids.ln_f_weight()), a.at<float>(p.lnf_mean), a.at<float>(p.lnf_rstd), B, T, C);
  params.end_backward(m_ids.head_module());

  // dres holds the gradient of the block's output (res3). Both residual adds pass it through
  // unchanged to their input, so it stays in place; each branch reads it as its output gradient
  // and its LayerNorm backward adds the branch's contribution into it.
  for (int l = L - 1; l >= 0; --l) {
    const Plan::Layer& Ly = p.layers[static_cast<size_t>(l)];
    auto id = [&](BlockParam bp) { return m_ids.block(l, bp); };
    params.begin_backward(GptIds::block_module(l));
    // MLP branch
    a.zero<S>(p.dfch_gelu, 4 * BTC);
    matmul_backward_cpu(a.at<S>(p.dfch_gelu), w.grad(id(BlockParam::mlp_c_proj_weight)),
                        w.grad(id(BlockParam::mlp_c_proj_bias)), dres, a.at<S>(Ly.fch_gelu),
                        w.param(id(BlockParam::mlp_c_proj_weight)), B, T, 4 * C, C);
    a.zero<S>(p.dfch, 4 * BTC);
    gelu_backward_cpu(a.at<S>(p.dfch), a.at<S>(Ly.fch), a.at<S>(p.dfch_gelu), 4 * BTC);
    a.zero<S>(p.dln, BTC);
    matmul_backward_cpu(dln, w.grad(id(BlockParam::mlp_c_fc_weight)), w.grad(id(BlockParam::mlp_c_fc_bias)),
                        a.at<S>(p.dfch), a.at<S>(Ly.ln2), w.param(id(BlockParam::mlp_c_fc_weight)), B, T, C, 4 * C);
    layernorm_backward_cpu(dres, w.grad(id(BlockParam::ln_2_weight)), w.grad(id(BlockParam::ln_2_bias)), dln,
                           a.at<S>(Ly.res2), w.param(id(BlockParam::ln_2_weight)), a.at<float>(Ly.ln2_mean),
                           a.at<float>(Ly.ln2_rstd), B, T, C);
    // attention branch
    a.zero<S>(p.datty, BTC);
    matmul_backward_cpu(a.at<S>(p.datty), w.grad(id(BlockParam::attn_c_proj_weight)),
                        w.grad(id(BlockParam::attn_c_proj_bias)), dres, a.at<S>(Ly.atty),
                        w.param(id(BlockParam::attn_c_proj_weight)), B, T, C, C);
    a.zero<S>(p.dqkv, 3 * BTC);
    attention_backward_cpu(a.at<S>(p.dqkv), a.at<S>(p.datty), a.at<S>(Ly.qkv), a.at<float>(Ly.att), B, T, C, NH);
    a.zero<S>(p.dln, BTC);
    matmul_backward_cpu(dln, w.grad(id(BlockParam::attn_c_attn_weight)), w.grad(id(BlockParam::attn_c_attn_bias)),
                        a.at<S>(p.dqkv), a.at<S>(Ly.ln1), w.param(id(BlockParam::attn_c_attn_weight)), B, T, C, 3 * C);
    layernorm_backward_cpu(dres, w.grad(id(BlockParam::ln_1_weight)), w.grad(id(BlockParam::ln_1_bias)), dln,
                           block_input(l), w.param(id(BlockParam::ln_1_weight)), a.at<float>(Ly.ln1_mean),
                           a.at<float>(Ly.ln1_rstd), B, T, C);
    params.end_backward(GptIds::block_module(l));
  }

  params.begin_backward(GptIds::k_embed_module);
  encoder_backward_cpu(w.grad(m_ids.wte), w.grad(m_ids.wpe), dres, a.inputs(), B, T, C);
  params.end_backward(GptIds::k_embed_module);
}

}  // namespace ds::model
