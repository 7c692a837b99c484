// What every Adam implementation does before touching an element: validate the hyper-parameters
// and the segment table, then compute each group's per-call constants. Shared by the CPU Adam
// (adam_cpu.cpp) and the CUDA Adam (cuda/adam_step.cu), so both step with the very same constants:
// that is half of what makes their results bitwise equal (the other half is the per-element
// operation order, adam.hpp). Part of ds_zero_plan, which ds_zero_cuda links without the engine.
#include <cmath>
#include <sstream>

#include "base/check.hpp"
#include "base/error.hpp"
#include "zero/adam.hpp"
#include "zero/adam_kernels.hpp"

namespace ds::zero {
namespace {

[[noreturn]] void bad_hyper(int group, const char* name, double value, const char* rule) {
  std::ostringstream out;
  out << "Adam " << name << " = " << value << " in parameter group " << group << " is invalid: " << rule
      << "; fix optimizer.params." << name << " in ds_config.json (or the scheduler that sets it)";
  throw ConfigError(out.str());
}

}  // namespace

void validate_adam_hyper(const AdamHyper& h, int group) {
  // Written as !(ok) so that NaN fails every test.
  if (!(h.lr >= 0.0f)) bad_hyper(group, "lr", h.lr, "the learning rate must be >= 0");
  if (!(h.eps >= 0.0f)) bad_hyper(group, "eps", h.eps, "eps must be >= 0");
  if (!(h.weight_decay >= 0.0f)) bad_hyper(group, "weight_decay", h.weight_decay, "weight decay must be >= 0");
  if (!(h.beta1 >= 0.0f && h.beta1 < 1.0f)) bad_hyper(group, "betas[0]", h.beta1, "betas must be in [0, 1)");
  if (!(h.beta2 >= 0.0f && h.beta2 < 1.0f)) bad_hyper(group, "betas[1]", h.beta2, "betas must be in [0, 1)");
  DS_CHECK(h.step >= 1, "Adam step count of group ", group, " is ", h.step, "; the first update is step 1");
}

namespace detail {

AdamConstants make_adam_constants(const AdamHyper& h, float grad_scale) {
  AdamConstants c;
  c.beta1 = h.beta1;
  c.beta2 = h.beta2;
  c.one_minus_beta1 = 1.0f - h.beta1;
  c.one_minus_beta2 = 1.0f - h.beta2;
  c.eps = h.eps;
  c.grad_scale = grad_scale;
  float bc1 = 1.0f;
  if (h.bias_correction == BiasCorrection::on) {
    const double t = static_cast<double>(h.step);
    const float beta1_t = static_cast<float>(std::pow(static_cast<double>(h.beta1), t));
    const float beta2_t = static_cast<float>(std::pow(static_cast<double>(h.beta2), t));
    bc1 = 1.0f - beta1_t;
    c.bias_correction2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(1.0f - beta2_t)));
  }
  c.step_size = -h.lr / bc1;
  c.l2 = h.mode == AdamMode::l2 && h.weight_decay > 0;
  c.decoupled = h.mode == AdamMode::adamw && h.weight_decay > 0;
  c.l2_decay = h.weight_decay;
  c.decoupled_decay = -h.lr * h.weight_decay;
  return c;
}

std::vector<AdamConstants> adam_constants_for_call(std::span<const AdamHyper> groups,
                                                   std::span<const ParamGroupSegment> segments, int64_t n,
                                                   float grad_scale) {
  DS_CHECK(std::isfinite(grad_scale), "gradient scale ", grad_scale, " (1 / combined loss-and-clip scale) is not finite");
  int64_t end_of_previous = 0;
  for (size_t s = 0; s < segments.size(); ++s) {
    const ParamGroupSegment& seg = segments[s];
    DS_CHECK(seg.count >= 0 && seg.offset >= end_of_previous && seg.offset + seg.count <= n, "segment ", s, " [",
             seg.offset, ", +", seg.count, ") is unsorted, overlaps the previous one or leaves [0, ", n, ")");
    DS_CHECK(seg.group >= 0 && static_cast<size_t>(seg.group) < groups.size(), "segment ", s, " names group ",
             seg.group, " of ", groups.size());
    end_of_previous = seg.offset + seg.count;
  }
  std::vector<AdamConstants> constants(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    validate_adam_hyper(groups[g], static_cast<int>(g));
    constants[g] = make_adam_constants(groups[g], grad_scale);
  }
  return constants;
}

}  // namespace detail
}  // namespace ds::zero
