#include "model/gpt_layout.hpp"

#include <cmath>

#include "base/check.hpp"

namespace ds::model {
namespace {

constexpr float k_init_std = 0.02f;

struct LayoutBuilder {
  ModelLayout layout;

  int unit(const std::string& name) {
    layout.units.push_back(UnitInfo{name, {}, 0});
    return static_cast<int>(layout.units.size()) - 1;
  }

  ParamId add(int unit, const std::string& name, std::vector<int64_t> shape, InitKind init, float std = 0.0f) {
    ParamInfo p;
    p.name = name;
    p.numel = 1;
    for (int64_t d : shape) p.numel *= d;
    p.shape = std::move(shape);
    p.weight_decay = p.shape.size() >= 2;  // no decay for biases and LayerNorm params
    p.init = init;
    p.init_std = std;
    p.unit = unit;
    p.hf_rows = p.shape[0];
    const ParamId id = static_cast<ParamId>(layout.params.size());
    layout.params.push_back(std::move(p));
    layout.units[static_cast<size_t>(unit)].params.push_back(id);
    layout.units[static_cast<size_t>(unit)].numel += layout.params.back().numel;
    return id;
  }

  // A Conv1D weight in HF: ours is (out, in), HF's is (in, out).
  ParamId add_linear_weight(int unit, const std::string& name, int64_t out, int64_t in, float std) {
    const ParamId id = add(unit, name, {out, in}, InitKind::normal, std);
    layout.params[static_cast<size_t>(id)].hf_layout = HfLayout::transposed;
    return id;
  }
};

}  // namespace

ModelLayout gpt_layout(const GptConfig& config) {
  validate(config);
  const int64_t C = config.n_embd, L = config.n_layer;
  const float proj_std = k_init_std / std::sqrt(2.0f * static_cast<float>(L));
  const GptIds ids = gpt_ids(config);
  LayoutBuilder b;

  const int wte_unit = b.unit("wte");
  const ParamId wte = b.add(wte_unit, "transformer.wte.weight", {config.padded_vocab_size, C}, InitKind::normal, k_init_std);
  b.layout.params[static_cast<size_t>(wte)].hf_rows = config.vocab_size;
  const int wpe_unit = b.unit("wpe");
  b.add(wpe_unit, "transformer.wpe.weight", {config.seq_len, C}, InitKind::normal, k_init_std);

  std::vector<int> block_units;
  for (int64_t i = 0; i < L; ++i) {
    const std::string h = "transformer.h." + std::to_string(i) + ".";
    const int u = b.unit("h." + std::to_string(i));
    block_units.push_back(u);
    b.add(u, h + "ln_1.weight", {C}, InitKind::ones);
    b.add(u, h + "ln_1.bias", {C}, InitKind::zeros);
    b.add_linear_weight(u, h + "attn.c_attn.weight", 3 * C, C, k_init_std);
    b.add(u, h + "attn.c_attn.bias", {3 * C}, InitKind::zeros);
    b.add_linear_weight(u, h + "attn.c_proj.weight", C, C, proj_std);
    b.add(u, h + "attn.c_proj.bias", {C}, InitKind::zeros);
    b.add(u, h + "ln_2.weight", {C}, InitKind::ones);
    b.add(u, h + "ln_2.bias", {C}, InitKind::zeros);
    b.add_linear_weight(u, h + "mlp.c_fc.weight", 4 * C, C, k_init_std);
    b.add(u, h + "mlp.c_fc.bias", {4 * C}, InitKind::zeros);
    b.add_linear_weight(u, h + "mlp.c_proj.weight", C, 4 * C, proj_std);
    const ParamId last = b.add(u, h + "mlp.c_proj.bias", {C}, InitKind::zeros);
    DS_CHECK(last == ids.block(static_cast<int>(i), BlockParam::mlp_c_proj_bias), "block param order");
  }
  const int lnf_unit = b.unit("ln_f");
  const ParamId lnf_w = b.add(lnf_unit, "transformer.ln_f.weight", {C}, InitKind::ones);
  b.add(lnf_unit, "transformer.ln_f.bias", {C}, InitKind::zeros);
  DS_CHECK(lnf_w == ids.ln_f_weight(), "ln_f param id");

  b.layout.modules.push_back(ModuleInfo{"embed", {wte_unit, wpe_unit}});
  for (int64_t i = 0; i < L; ++i) b.layout.modules.push_back(ModuleInfo{"h." + std::to_string(i), {block_units[static_cast<size_t>(i)]}});
  b.layout.modules.push_back(ModuleInfo{"head", {lnf_unit, wte_unit}});
  DS_CHECK(static_cast<int>(b.layout.modules.size()) == ids.num_modules(), "module count");
  return b.layout;
}

}  // namespace ds::model
