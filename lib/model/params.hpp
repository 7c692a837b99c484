// The engine-model contract (DESIGN.md §3), the seam ZeRO stage 3 needs.
//
// A model describes its parameters as a ModelLayout:
//   - params:  every trainable tensor once (a tied weight is ONE param used by several modules);
//   - units:   groups of params that are sharded, gathered and released together (the engine's
//              granularity for partitioning, all-gather and reduce-scatter);
//   - modules: the compute steps in forward order, each naming the units it reads.
// Forward runs modules 0..M-1, backward runs M-1..0. Around each module the model calls the
// engine through ParamAccess, which is where a ZeRO-3 engine gathers (and prefetches) a module's
// units before it runs and releases them after, and where stage 2/3 start reducing gradients of
// units whose every use in backward has finished.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/tensor.hpp"

namespace ds::model {

using ParamId = int;

// How a parameter is initialised; see model/init.hpp for the counter-based generator that lets any
// rank initialise any slice of any parameter without materialising the rest.
enum class InitKind : uint8_t { zeros, ones, normal };

// How the consolidated safetensors export turns our tensor into Hugging Face's (GPT2LMHeadModel).
// Our 2-D weights are (out, in) like torch.nn.Linear, so one matmul serves both the blocks and the
// tied head; HF's Conv1D stores (in, out), so those weights are transposed on export (and import).
enum class HfLayout : uint8_t { same, transposed };

struct ParamInfo {
  std::string name;             // Hugging Face GPT-2 name, e.g. "transformer.h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;   // our layout (row-major); export transposes where HF's Conv1D differs
  int64_t numel = 0;
  bool weight_decay = true;     // false for biases and LayerNorm params (the "no_decay" group)
  InitKind init = InitKind::zeros;
  float init_std = 0.0f;        // for InitKind::normal
  int unit = -1;                // index into ModelLayout::units
  HfLayout hf_layout = HfLayout::same;
  // How many of our rows (along shape[0]) HF's tensor has: export takes the first hf_rows rows, then
  // transposes if hf_layout says so. wte is stored with the padded vocabulary
  // (GptConfig::padded_vocab_size rows) and exported with its first vocab_size; every other param
  // has hf_rows == shape[0].
  int64_t hf_rows = 0;
};

struct UnitInfo {
  std::string name;             // e.g. "wte", "h.3", "ln_f"
  std::vector<ParamId> params;  // in layout order; a unit's flat buffer concatenates them
  int64_t numel = 0;            // sum of its params' numel
};

struct ModuleInfo {
  std::string name;             // e.g. "embed", "h.3", "head"
  std::vector<int> units;       // units whose params this module reads (forward and backward)
};

struct ModelLayout {
  std::vector<ParamInfo> params;
  std::vector<UnitInfo> units;
  std::vector<ModuleInfo> modules;

  int64_t total_numel() const;              // each param once (tied weights counted once)
  int64_t unit_offset(ParamId p) const;     // offset of param p inside its unit's flat buffer
  // For each unit, the index of the module whose end_backward completes the unit's gradient:
  // backward runs in reverse, so that is the LAST module in backward order that reads the unit,
  // i.e. the FIRST (lowest index) in forward order. For GPT-2's tied wte (read by "embed" and
  // "head") it is "embed", module 0.
  std::vector<int> grad_ready_module() const;
  // The param of that name; throws UsageError naming the unknown name.
  ParamId find_param(const std::string& name) const;
};

// Implemented by the engine (lib/zero) and, for tests and single-process use, by
// model::ResidentParams. Calls arrive from the one thread that runs the model, in this order per
// micro-step: begin_forward(0), end_forward(0), ..., begin_forward(M-1), end_forward(M-1), then
// begin_backward(M-1), end_backward(M-1), ..., begin_backward(0), end_backward(0).
class ParamAccess {
 public:
  virtual ~ParamAccess() = default;

  // Blocks until every param of module m's units is available in full; the model may then read
  // them through param() until end_forward(m) / end_backward(m).
  virtual void begin_forward(int module) = 0;
  virtual void end_forward(int module) = 0;
  virtual void begin_backward(int module) = 0;
  // After this call the model no longer touches module m's params or grads; the engine may
  // release gathered params and reduce the gradients of units whose last use this was.
  virtual void end_backward(int module) = 0;

  // The full parameter in the compute dtype. Valid only inside a begin/end of a module that
  // reads its unit.
  virtual TensorRef param(ParamId p) = 0;
  // The gradient accumulator of p, in the compute dtype. Valid only inside begin_backward /
  // end_backward of a module that reads its unit. The model ADDS (+=) into it; the engine hands
  // it out zeroed at the first use in each micro-step's backward.
  virtual TensorRef grad(ParamId p) = 0;
};

}  // namespace ds::model
