// The ModelLayout of a GPT-2-family model (model/params.hpp): params with Hugging Face names,
// units, modules, initialisation.
//
//   params  transformer.wte.weight (Vp,C), transformer.wpe.weight (seq_len,C), then per block i
//           transformer.h.i.{ln_1.weight, ln_1.bias, attn.c_attn.weight (3C,C), attn.c_attn.bias,
//           attn.c_proj.weight (C,C), attn.c_proj.bias, ln_2.weight, ln_2.bias, mlp.c_fc.weight
//           (4C,C), mlp.c_fc.bias, mlp.c_proj.weight (C,4C), mlp.c_proj.bias}, then
//           transformer.ln_f.weight, transformer.ln_f.bias. Param ids are in this order, which is
//           also the order of the units, so the concatenation of all units is the params in id order.
//   units   wte, wpe, h.0 .. h.{L-1}, ln_f
//   modules embed (wte, wpe), h.0 .. h.{L-1}, head (ln_f, wte: the tied lm_head)
//   init    normal(0, 0.02) for weights and embeddings; the two residual projections c_proj get
//           0.02/sqrt(2L) (GPT-2 paper, nanoGPT); biases 0; LayerNorm weight 1, bias 0.
//   decay   off for biases and LayerNorm params (the 1-D tensors), on for the rest.
#pragma once

#include "model/gpt_config.hpp"
#include "model/params.hpp"

namespace ds::model {

ModelLayout gpt_layout(const GptConfig& config);

// The params of one block, in their order inside the block's unit.
enum class BlockParam : int {
  ln_1_weight, ln_1_bias,
  attn_c_attn_weight, attn_c_attn_bias,
  attn_c_proj_weight, attn_c_proj_bias,
  ln_2_weight, ln_2_bias,
  mlp_c_fc_weight, mlp_c_fc_bias,
  mlp_c_proj_weight, mlp_c_proj_bias,
  count
};

// Param ids and module indices of gpt_layout(config), without searching by name.
struct GptIds {
  int n_layer = 0;
  ParamId wte = 0, wpe = 1;
  ParamId block(int layer, BlockParam p) const { return 2 + layer * static_cast<int>(BlockParam::count) + static_cast<int>(p); }
  ParamId ln_f_weight() const { return 2 + n_layer * static_cast<int>(BlockParam::count); }
  ParamId ln_f_bias() const { return ln_f_weight() + 1; }

  static constexpr int k_embed_module = 0;
  static int block_module(int layer) { return 1 + layer; }
  int head_module() const { return n_layer + 1; }
  int num_modules() const { return n_layer + 2; }
};

inline GptIds gpt_ids(const GptConfig& config) { return GptIds{config.n_layer}; }

}  // namespace ds::model
