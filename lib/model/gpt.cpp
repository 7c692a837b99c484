#include "model/gpt.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "model/ops.hpp"
#include "model/ops_backend.hpp"
#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::model {

// What the backend changes in the plan: the attention state it keeps, whether GELU is fused into
// the matmuls (no dfch_gelu gradient buffer) and whether dlogits overwrite the logits.
struct PlanShape {
  int64_t attention_state_floats = 0;  // per layer
  bool fused_gelu = false;
  bool inplace_xent = false;
  bool checkpointing = false;          // one shared set of block buffers; only res3 per layer
};

// Reads params / grads of the module that is open, checking sizes against the layout.
struct GptAccess {
  ParamAccess& params;
  const ModelLayout& layout;
  const void* param(ParamId p) const { return checked(params.param(p), p).data; }
  void* grad(ParamId p) const { return checked(params.grad(p), p).data; }
  TensorRef checked(TensorRef t, ParamId p) const {
    DS_CHECK(t.numel == layout.params[static_cast<size_t>(p)].numel, layout.params[static_cast<size_t>(p)].name,
             " handed out with ", t.numel, " elements");
    return t;
  }
};

namespace {

// Byte offsets of every buffer forward and backward use for one (B,T), each 64-byte aligned,
// all in one allocation. Activations kept for backward first, then scratch.
struct Plan {
  struct Layer {
    size_t ln1, ln1_mean, ln1_rstd;  // ln1 (B,T,C); stats (B,T) fp32
    size_t qkv;                      // (B,T,3C)
    size_t att;                      // attention state, fp32: (B,NH,T,T) probabilities (CPU) or (B,NH,T) log-sum-exp
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


Plan make_plan(const GptConfig& c, DType dtype, int B, int T, const PlanShape& shape) {
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
  Plan::Layer shared{};
  for (int l = 0; l < c.n_layer; ++l) {
    Plan::Layer L;
    if (shape.checkpointing && l > 0) {
      L = shared;
      L.res3 = take(BT * C, s);
      p.layers.push_back(L);
      continue;
    }
    L.ln1 = take(BT * C, s), L.ln1_mean = take(BT, f), L.ln1_rstd = take(BT, f);
    L.qkv = take(BT * 3 * C, s);
    L.att = take(shape.attention_state_floats, f);
    L.atty = take(BT * C, s);
    L.res2 = take(BT * C, s);
    L.ln2 = take(BT * C, s), L.ln2_mean = take(BT, f), L.ln2_rstd = take(BT, f);
    L.fch = take(BT * 4 * C, s), L.fch_gelu = take(BT * 4 * C, s);
    L.res3 = take(BT * C, s);
    p.layers.push_back(L);
    shared = L;
  }
  p.lnf = take(BT * C, s), p.lnf_mean = take(BT, f), p.lnf_rstd = take(BT, f);
  p.logits = take(BT * Vp, s);
  p.losses = take(BT, f);
  p.proj = take(BT * C, s);
  p.dres = take(BT * C, s);
  p.dln = take(BT * C, s);
  p.dqkv = take(BT * 3 * C, s);
  p.datty = take(BT * C, s);
  p.dfch = take(BT * 4 * C, s);
  p.dfch_gelu = shape.fused_gelu ? p.dfch : take(BT * 4 * C, s);
  p.dlogits = shape.inplace_xent ? p.logits : take(BT * Vp, s);
  p.tokens = take(2 * BT, sizeof(int32_t));
  p.total = cursor;
  return p;
}

}  // namespace

struct Gpt::Activations {
  int B = 0, T = 0;
  Plan plan;
  device::Buffer memory;
  bool have_targets = false;
  bool backward_ready = false;  // a forward with targets ran and its backward has not
  int64_t scored = 0;           // positions of the last forward with a target

  template <typename X>
  X* at(size_t offset) {
    return reinterpret_cast<X*>(memory.as<std::byte>() + offset);
  }
  int32_t* inputs() { return at<int32_t>(plan.tokens); }
  int32_t* targets() { return at<int32_t>(plan.tokens) + int64_t{B} * T; }
};

Gpt::Gpt(GptConfig config, DType compute_dtype) : Gpt(std::move(config), compute_dtype, make_cpu_ops(compute_dtype)) {}

Gpt::Gpt(GptConfig config, DType compute_dtype, std::unique_ptr<Ops> ops)
    : m_config(std::move(config)), m_dtype(compute_dtype), m_layout(gpt_layout(m_config)), m_ids(gpt_ids(m_config)),
      m_ops(std::move(ops)), m_acts(std::make_unique<Activations>()) {
  DS_CHECK(m_ops && m_ops->dtype() == m_dtype, "the Gpt's ops backend must compute in ", dtype_name(m_dtype));
}

Gpt::~Gpt() = default;
Gpt::Gpt(Gpt&&) noexcept = default;
Gpt& Gpt::operator=(Gpt&&) noexcept = default;

int64_t Gpt::activation_bytes(const GptConfig& config, DType dtype, int B, int T, ActivationOptions options) {
  PlanShape shape;
  shape.attention_state_floats = int64_t{B} * config.n_head * T * (options.flash ? 1 : T);
  shape.fused_gelu = shape.inplace_xent = options.flash;
  shape.checkpointing = options.checkpointing;
  return static_cast<int64_t>(make_plan(config, dtype, B, T, shape).total);
}

void Gpt::set_activation_checkpointing(bool on) {
  if (on == m_checkpointing) return;
  m_checkpointing = on;
  m_acts->B = m_acts->T = 0;  // re-plan at the next forward
  m_acts->backward_ready = false;
}

int64_t Gpt::activation_bytes(int B, int T) const {
  return static_cast<int64_t>(make_plan(m_config, m_dtype, B, T, plan_shape(B, T)).total);
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
    a.plan = make_plan(m_config, m_dtype, B, T, plan_shape(B, T));
    if (a.memory.bytes() < a.plan.total) {
      a.memory.reset();  // the old buffer first: on a GPU both may not fit
      a.memory = m_ops->alloc_activations(a.plan.total);
    }
    m_ops->prepare(B, T, m_config.n_embd, m_config.n_head, m_config.padded_vocab_size);
    a.B = B, a.T = T;
  }
  m_ops->upload_tokens(a.inputs(), a.targets(), inputs, targets, B, T);
  a.scored = targets ? count_scored_targets(targets, BT) : 0;
  a.have_targets = targets != nullptr;
  a.backward_ready = false;
  const float loss = forward_impl(params);
  a.backward_ready = a.have_targets;
  return loss;
}

void Gpt::backward(ParamAccess& params, float dloss) {
  DS_CHECK(m_acts->backward_ready, "Gpt::backward needs a forward with targets first (and runs once per forward)");
  backward_impl(params, dloss);
  m_acts->backward_ready = false;
}

PlanShape Gpt::plan_shape(int B, int T) const {
  return {m_ops->attention_state_floats(B, T, m_config.n_head), m_ops->fuses_gelu(), m_ops->fuses_gelu(), m_checkpointing};
}

std::vector<float> Gpt::logits() const {
  const Activations& a = *m_acts;
  DS_CHECK(a.B > 0, "no forward has run");
  DS_CHECK(!a.plan.dlogits || a.plan.dlogits != a.plan.logits || a.backward_ready || !a.have_targets,
           "the logits were overwritten by backward (this backend computes dlogits in place)");
  const size_t n = static_cast<size_t>(a.B) * a.T * m_config.padded_vocab_size;
  std::vector<std::byte> raw(n * dtype_size(m_dtype));
  m_ops->read_back(raw.data(), const_cast<Activations&>(a).at<std::byte>(a.plan.logits), raw.size());
  std::vector<float> out(n);
  visit_dtype(m_dtype, [&](auto zero) {
    const auto* v = reinterpret_cast<const decltype(zero)*>(raw.data());
    for (size_t i = 0; i < n; ++i) out[i] = to_float(v[i]);
  });
  return out;
}

std::vector<float> Gpt::losses() const {
  const Activations& a = *m_acts;
  DS_CHECK(a.B > 0, "no forward has run");
  std::vector<float> out(static_cast<size_t>(a.B) * a.T);
  m_ops->read_back(out.data(), const_cast<Activations&>(a).at<float>(a.plan.losses), out.size() * sizeof(float));
  return out;
}


// One block's forward from its input (the embedding or the previous block's res3) into its
// activations: the forward pass, and backward's recompute under activation checkpointing.
void Gpt::forward_block(int l, const GptAccess& w) {
  Activations& a = *m_acts;
  Ops& ops = *m_ops;
  const Plan& p = a.plan;
  const int B = a.B, T = a.T, C = m_config.n_embd, NH = m_config.n_head;
  const int N = B * T;
  const int64_t BTC = int64_t{N} * C;
  auto at = [&](size_t offset) { return a.at<std::byte>(offset); };
  auto f32 = [&](size_t offset) { return a.at<float>(offset); };
  const Plan::Layer& L = p.layers[static_cast<size_t>(l)];
  auto id = [&](BlockParam bp) { return m_ids.block(l, bp); };
  const void* x = l == 0 ? at(p.encoded) : at(p.layers[static_cast<size_t>(l - 1)].res3);
  void* proj = at(p.proj);
  // attention branch: res2 = x + c_proj(attention(c_attn(ln_1(x))))
  ops.layernorm_forward(at(L.ln1), f32(L.ln1_mean), f32(L.ln1_rstd), x, w.param(id(BlockParam::ln_1_weight)),
                        w.param(id(BlockParam::ln_1_bias)), N, C);
  ops.matmul_forward(at(L.qkv), at(L.ln1), w.param(id(BlockParam::attn_c_attn_weight)),
                     w.param(id(BlockParam::attn_c_attn_bias)), N, C, 3 * C);
  ops.attention_forward(at(L.atty), f32(L.att), at(L.qkv), B, T, C, NH);
  ops.matmul_forward(proj, at(L.atty), w.param(id(BlockParam::attn_c_proj_weight)),
                     w.param(id(BlockParam::attn_c_proj_bias)), N, C, C);
  ops.residual_forward(at(L.res2), x, proj, BTC);
  // MLP branch: res3 = res2 + c_proj(gelu(c_fc(ln_2(res2))))
  ops.layernorm_forward(at(L.ln2), f32(L.ln2_mean), f32(L.ln2_rstd), at(L.res2), w.param(id(BlockParam::ln_2_weight)),
                        w.param(id(BlockParam::ln_2_bias)), N, C);
  if (ops.fuses_gelu()) {
    ops.matmul_forward(at(L.fch), at(L.ln2), w.param(id(BlockParam::mlp_c_fc_weight)),
                       w.param(id(BlockParam::mlp_c_fc_bias)), N, C, 4 * C, at(L.fch_gelu));
  } else {
    ops.matmul_forward(at(L.fch), at(L.ln2), w.param(id(BlockParam::mlp_c_fc_weight)),
                       w.param(id(BlockParam::mlp_c_fc_bias)), N, C, 4 * C);
    ops.gelu_forward(at(L.fch_gelu), at(L.fch), 4 * BTC);
  }
  ops.matmul_forward(proj, at(L.fch_gelu), w.param(id(BlockParam::mlp_c_proj_weight)),
                     w.param(id(BlockParam::mlp_c_proj_bias)), N, 4 * C, C);
  ops.residual_forward(at(L.res3), at(L.res2), proj, BTC);
}

float Gpt::forward_impl(ParamAccess& params) {
  Activations& a = *m_acts;
  Ops& ops = *m_ops;
  const Plan& p = a.plan;
  const GptAccess w{params, m_layout};
  const int B = a.B, T = a.T, C = m_config.n_embd;
  const int V = m_config.vocab_size, Vp = m_config.padded_vocab_size;
  const int N = B * T;
  auto at = [&](size_t offset) { return a.at<std::byte>(offset); };
  auto f32 = [&](size_t offset) { return a.at<float>(offset); };

  params.begin_forward(GptIds::k_embed_module);
  ops.encoder_forward(at(p.encoded), a.inputs(), w.param(m_ids.wte), w.param(m_ids.wpe), B, T, C);
  params.end_forward(GptIds::k_embed_module);

  for (int l = 0; l < m_config.n_layer; ++l) {
    params.begin_forward(GptIds::block_module(l));
    forward_block(l, w);
    params.end_forward(GptIds::block_module(l));
  }
  void* x = at(p.layers.back().res3);

  params.begin_forward(m_ids.head_module());
  ops.layernorm_forward(at(p.lnf), f32(p.lnf_mean), f32(p.lnf_rstd), x, w.param(m_ids.ln_f_weight()),
                        w.param(m_ids.ln_f_bias()), N, C);
  ops.matmul_forward(at(p.logits), at(p.lnf), w.param(m_ids.wte), nullptr, N, C, Vp);
  float loss = 0.0f;
  if (a.have_targets) {
    ops.softmax_xent_forward(f32(p.losses), at(p.logits), a.targets(), N, V, Vp);
    loss = ops.mean_loss(f32(p.losses), N, a.scored);
  } else {
    ops.zero(f32(p.losses), static_cast<size_t>(N) * sizeof(float));
  }
  params.end_forward(m_ids.head_module());
  return loss;
}

void Gpt::backward_impl(ParamAccess& params, float dloss) {
  Activations& a = *m_acts;
  Ops& ops = *m_ops;
  const Plan& p = a.plan;
  const GptAccess w{params, m_layout};
  const int B = a.B, T = a.T, C = m_config.n_embd, NH = m_config.n_head, L = m_config.n_layer;
  const int V = m_config.vocab_size, Vp = m_config.padded_vocab_size;
  const int N = B * T;
  const size_t es = dtype_size(m_dtype);
  const size_t BTC_bytes = static_cast<size_t>(N) * C * es;
  auto at = [&](size_t offset) { return a.at<std::byte>(offset); };
  auto f32 = [&](size_t offset) { return a.at<float>(offset); };
  void* dres = at(p.dres);
  void* dln = at(p.dln);
  auto block_input = [&](int l) { return l == 0 ? at(p.encoded) : at(p.layers[static_cast<size_t>(l - 1)].res3); };

  params.begin_backward(m_ids.head_module());
  ops.softmax_xent_backward(at(p.dlogits), at(p.logits), a.targets(), dloss, a.scored, N, V, Vp);
  ops.zero(dln, BTC_bytes);
  ops.matmul_backward(dln, w.grad(m_ids.wte), nullptr, at(p.dlogits), at(p.lnf), w.param(m_ids.wte), N, C, Vp);
  ops.zero(dres, BTC_bytes);
  ops.layernorm_backward(dres, w.grad(m_ids.ln_f_weight()), w.grad(m_ids.ln_f_bias()), dln, block_input(L),
                         w.param(m_ids.ln_f_weight()), f32(p.lnf_mean), f32(p.lnf_rstd), N, C);
  params.end_backward(m_ids.head_module());

  // dres holds the gradient of the block's output (res3). Both residual adds pass it through
  // unchanged to their input, so it stays in place; each branch reads it as its output gradient
  // and its LayerNorm backward adds the branch's contribution into it.
  for (int l = L - 1; l >= 0; --l) {
    const Plan::Layer& Ly = p.layers[static_cast<size_t>(l)];
    auto id = [&](BlockParam bp) { return m_ids.block(l, bp); };
    params.begin_backward(GptIds::block_module(l));
    if (m_checkpointing) forward_block(l, w);  // recompute this block's activations from its kept input
    // MLP branch
    if (ops.fuses_gelu()) {
      // dfch = (dres · W_proj) ∘ gelu'(fch), written by the fused backward
      ops.matmul_backward(at(p.dfch), w.grad(id(BlockParam::mlp_c_proj_weight)), w.grad(id(BlockParam::mlp_c_proj_bias)),
                          dres, at(Ly.fch_gelu), w.param(id(BlockParam::mlp_c_proj_weight)), N, 4 * C, C, at(Ly.fch));
    } else {
      ops.zero(at(p.dfch_gelu), 4 * BTC_bytes);
      ops.matmul_backward(at(p.dfch_gelu), w.grad(id(BlockParam::mlp_c_proj_weight)),
                          w.grad(id(BlockParam::mlp_c_proj_bias)), dres, at(Ly.fch_gelu),
                          w.param(id(BlockParam::mlp_c_proj_weight)), N, 4 * C, C);
      ops.zero(at(p.dfch), 4 * BTC_bytes);
      ops.gelu_backward(at(p.dfch), at(Ly.fch), at(p.dfch_gelu), 4 * int64_t{N} * C);
    }
    ops.zero(dln, BTC_bytes);
    ops.matmul_backward(dln, w.grad(id(BlockParam::mlp_c_fc_weight)), w.grad(id(BlockParam::mlp_c_fc_bias)), at(p.dfch),
                        at(Ly.ln2), w.param(id(BlockParam::mlp_c_fc_weight)), N, C, 4 * C);
    ops.layernorm_backward(dres, w.grad(id(BlockParam::ln_2_weight)), w.grad(id(BlockParam::ln_2_bias)), dln, at(Ly.res2),
                           w.param(id(BlockParam::ln_2_weight)), f32(Ly.ln2_mean), f32(Ly.ln2_rstd), N, C);
    // attention branch
    ops.zero(at(p.datty), BTC_bytes);
    ops.matmul_backward(at(p.datty), w.grad(id(BlockParam::attn_c_proj_weight)), w.grad(id(BlockParam::attn_c_proj_bias)),
                        dres, at(Ly.atty), w.param(id(BlockParam::attn_c_proj_weight)), N, C, C);
    ops.zero(at(p.dqkv), 3 * BTC_bytes);
    ops.attention_backward(at(p.dqkv), at(p.datty), at(Ly.qkv), at(Ly.atty), f32(Ly.att), B, T, C, NH);
    ops.zero(dln, BTC_bytes);
    ops.matmul_backward(dln, w.grad(id(BlockParam::attn_c_attn_weight)), w.grad(id(BlockParam::attn_c_attn_bias)),
                        at(p.dqkv), at(Ly.ln1), w.param(id(BlockParam::attn_c_attn_weight)), N, C, 3 * C);
    ops.layernorm_backward(dres, w.grad(id(BlockParam::ln_1_weight)), w.grad(id(BlockParam::ln_1_bias)), dln,
                           block_input(l), w.param(id(BlockParam::ln_1_weight)), f32(Ly.ln1_mean), f32(Ly.ln1_rstd), N, C);
    params.end_backward(GptIds::block_module(l));
  }

  params.begin_backward(GptIds::k_embed_module);
  ops.encoder_backward(w.grad(m_ids.wte), w.grad(m_ids.wpe), dres, a.inputs(), B, T, C);
  params.end_backward(GptIds::k_embed_module);
}

}  // namespace ds::model
