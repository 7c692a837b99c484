#include "config/config_batch.hpp"

#include <string>

#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::config {
namespace {

std::string s(int64_t v) { return std::to_string(v); }

// "set train_batch_size to 8 or 12": the multiples of `unit` around `value` (only positive ones).
std::string nearest_multiples(int64_t value, int64_t unit) {
  const int64_t below = value / unit * unit;
  const int64_t above = below + unit;
  if (below <= 0) return s(above);
  return s(below) + " or " + s(above);
}

}  // namespace

BatchConfig infer_batch(const BatchKeys& given, int world_size, std::string_view source) {
  DS_CHECK(world_size >= 1, "world size ", world_size);
  const int64_t ws = world_size;
  const std::string src(source);
  const auto& tbs = given.train_batch_size;
  const auto& mbs = given.micro_batch;
  const auto& gas = given.grad_accum;

  BatchConfig b;
  if (tbs && mbs && gas) {
    const int64_t product = *mbs * *gas * ws;
    if (*tbs != product)
      throw ConfigError(src + ": train_batch_size (" + s(*tbs) + ") != train_micro_batch_size_per_gpu (" + s(*mbs) +
                        ") * gradient_accumulation_steps (" + s(*gas) + ") * world size (" + s(ws) + ") = " + s(product) +
                        "; set train_batch_size to " + s(product) + ", or remove it to have it inferred");
    b = {*tbs, *mbs, *gas};
  } else if (tbs && mbs) {
    const int64_t unit = *mbs * ws;
    if (*tbs % unit != 0)
      throw ConfigError(src + ": train_batch_size (" + s(*tbs) + ") is not a multiple of train_micro_batch_size_per_gpu (" +
                        s(*mbs) + ") * world size (" + s(ws) + ") = " + s(unit) +
                        ", so gradient_accumulation_steps cannot be inferred; set train_batch_size to " +
                        nearest_multiples(*tbs, unit) + ", or set gradient_accumulation_steps");
    b = {*tbs, *mbs, *tbs / unit};
  } else if (tbs && gas) {
    const int64_t unit = *gas * ws;
    if (*tbs % unit != 0)
      throw ConfigError(src + ": train_batch_size (" + s(*tbs) + ") is not a multiple of gradient_accumulation_steps (" +
                        s(*gas) + ") * world size (" + s(ws) + ") = " + s(unit) +
                        ", so train_micro_batch_size_per_gpu cannot be inferred; set train_batch_size to " +
                        nearest_multiples(*tbs, unit) + ", or set train_micro_batch_size_per_gpu");
    b = {*tbs, *tbs / unit, *gas};
  } else if (mbs && gas) {
    b = {*mbs * *gas * ws, *mbs, *gas};
  } else if (tbs) {
    if (*tbs % ws != 0)
      throw ConfigError(src + ": train_batch_size (" + s(*tbs) + ") is not a multiple of the world size (" + s(ws) +
                        "), so train_micro_batch_size_per_gpu cannot be inferred; set train_batch_size to " +
                        nearest_multiples(*tbs, ws) + ", or set train_micro_batch_size_per_gpu");
    b = {*tbs, *tbs / ws, 1};
  } else if (mbs) {
    b = {*mbs * ws, *mbs, 1};
  } else {
    throw ConfigError(src + ": set train_micro_batch_size_per_gpu or train_batch_size (DeepSpeed needs one of them)");
  }
  return b;
}

}  // namespace ds::config
