// The ModelLayout of GPT-2: names, shapes, counts, units, modules, grad_ready_module, export and
// optimizer metadata.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "model/gpt_layout.hpp"
#include "base/error.hpp"

using namespace ds;
using namespace ds::model;

TEST_CASE("gpt2's layout has Hugging Face's names, our (out, in) shapes and 124,475,904 params", "[layout]") {
  const ModelLayout l = gpt_layout(gpt_preset("gpt2"));
  CHECK(l.total_numel() == 124'475'904);
  CHECK(l.params.size() == 2 + 12 * 12 + 2);
  CHECK(l.params[0].name == "transformer.wte.weight");
  CHECK(l.params[0].shape == std::vector<int64_t>{50304, 768});
  CHECK(l.params[1].name == "transformer.wpe.weight");
  CHECK(l.params[1].shape == std::vector<int64_t>{1024, 768});
  const std::vector<std::pair<std::string, std::vector<int64_t>>> block = {
      {"ln_1.weight", {768}},          {"ln_1.bias", {768}},         {"attn.c_attn.weight", {2304, 768}},
      {"attn.c_attn.bias", {2304}},    {"attn.c_proj.weight", {768, 768}}, {"attn.c_proj.bias", {768}},
      {"ln_2.weight", {768}},          {"ln_2.bias", {768}},         {"mlp.c_fc.weight", {3072, 768}},
      {"mlp.c_fc.bias", {3072}},       {"mlp.c_proj.weight", {768, 3072}}, {"mlp.c_proj.bias", {768}}};
  const GptIds ids = gpt_ids(gpt_preset("gpt2"));
  for (int i : {0, 11}) {
    for (size_t k = 0; k < block.size(); ++k) {
      const ParamInfo& p = l.params[static_cast<size_t>(ids.block(i, static_cast<BlockParam>(k)))];
      CHECK(p.name == "transformer.h." + std::to_string(i) + "." + block[k].first);
      CHECK(p.shape == block[k].second);
    }
  }
  CHECK(l.params[static_cast<size_t>(ids.ln_f_weight())].name == "transformer.ln_f.weight");
  CHECK(l.params[static_cast<size_t>(ids.ln_f_bias())].name == "transformer.ln_f.bias");
  CHECK(l.find_param("transformer.h.3.mlp.c_fc.bias") == ids.block(3, BlockParam::mlp_c_fc_bias));
  CHECK_THROWS_AS(l.find_param("lm_head.weight"), UsageError);
  for (const ParamInfo& p : l.params) {
    int64_t n = 1;
    for (int64_t d : p.shape) n *= d;
    CHECK(p.numel == n);
  }
  // Hugging Face's own count with the unpadded vocabulary
  CHECK(gpt_layout(parse_model_spec("gpt2,padded_vocab_size=50257")).total_numel() == 124'439'808);
}

TEST_CASE("export metadata transposes Conv1D weights and drops wte's padding rows", "[layout]") {
  const ModelLayout l = gpt_layout(gpt_preset("gpt2"));
  for (const ParamInfo& p : l.params) {
    const bool conv1d = p.name.find(".c_attn.weight") != std::string::npos || p.name.find(".c_proj.weight") != std::string::npos ||
                        p.name.find(".c_fc.weight") != std::string::npos;
    CHECK((p.hf_layout == HfLayout::transposed) == conv1d);
    if (p.name == "transformer.wte.weight") CHECK(p.hf_rows == 50257);
    else CHECK(p.hf_rows == p.shape[0]);
  }
}

TEST_CASE("biases and LayerNorm params are excluded from weight decay; init follows GPT-2", "[layout]") {
  const GptConfig c = gpt_preset("gpt2");
  const ModelLayout l = gpt_layout(c);
  const float proj_std = 0.02f / std::sqrt(24.0f);
  for (const ParamInfo& p : l.params) {
    INFO(p.name);
    const bool is_bias = p.name.ends_with(".bias");
    const bool is_ln = p.name.find(".ln_") != std::string::npos;
    CHECK(p.weight_decay == !(is_bias || is_ln));
    if (is_bias) CHECK(p.init == InitKind::zeros);
    else if (is_ln) CHECK(p.init == InitKind::ones);
    else {
      CHECK(p.init == InitKind::normal);
      const bool residual_proj = p.name.find("c_proj.weight") != std::string::npos;
      CHECK(p.init_std == (residual_proj ? proj_std : 0.02f));
    }
  }
}

TEST_CASE("units are wte, wpe, one per block and ln_f, and concatenate the params in id order", "[layout]") {
  const GptConfig c = parse_model_spec("n_layer=3,n_head=2,n_embd=8,seq_len=4,vocab_size=10");
  const ModelLayout l = gpt_layout(c);
  std::vector<std::string> names;
  for (const UnitInfo& u : l.units) names.push_back(u.name);
  CHECK(names == std::vector<std::string>{"wte", "wpe", "h.0", "h.1", "h.2", "ln_f"});
  ParamId next = 0;
  int64_t total = 0;
  for (size_t u = 0; u < l.units.size(); ++u) {
    int64_t offset = 0;
    for (ParamId p : l.units[u].params) {
      CHECK(p == next++);  // units concatenate params in id order
      CHECK(l.params[static_cast<size_t>(p)].unit == static_cast<int>(u));
      CHECK(l.unit_offset(p) == offset);
      offset += l.params[static_cast<size_t>(p)].numel;
    }
    CHECK(l.units[u].numel == offset);
    total += offset;
  }
  CHECK(next == static_cast<ParamId>(l.params.size()));
  CHECK(total == l.total_numel());
  CHECK(l.units[2].params.size() == 12);
  CHECK(l.total_numel() == gpt_num_params(c));
}

TEST_CASE("modules are embed, the blocks and the head, and the tied wte is read by embed and head", "[layout]") {
  const ModelLayout l = gpt_layout(parse_model_spec("n_layer=3,n_head=2,n_embd=8,seq_len=4,vocab_size=10"));
  REQUIRE(l.modules.size() == 5);
  CHECK(l.modules[0].name == "embed");
  CHECK(l.modules[0].units == std::vector<int>{0, 1});
  for (int i = 0; i < 3; ++i) {
    CHECK(l.modules[static_cast<size_t>(i + 1)].name == "h." + std::to_string(i));
    CHECK(l.modules[static_cast<size_t>(i + 1)].units == std::vector<int>{i + 2});
  }
  CHECK(l.modules[4].name == "head");
  CHECK(l.modules[4].units == std::vector<int>{5, 0});
  // every param is read by some module
  std::set<int> read;
  for (const ModuleInfo& m : l.modules) read.insert(m.units.begin(), m.units.end());
  CHECK(read.size() == l.units.size());
}

TEST_CASE("a unit's gradient is ready after the backward of the first module that reads it", "[layout]") {
  const ModelLayout l = gpt_layout(parse_model_spec("n_layer=3,n_head=2,n_embd=8,seq_len=4,vocab_size=10"));
  // wte: read by head (4) and embed (0); backward visits head first, so embed completes it.
  CHECK(l.grad_ready_module() == std::vector<int>{0, 0, 1, 2, 3, 4});
}
