#include "model/params.hpp"

#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::model {

int64_t ModelLayout::total_numel() const {
  int64_t total = 0;
  for (const ParamInfo& p : params) total += p.numel;
  return total;
}

int64_t ModelLayout::unit_offset(ParamId p) const {
  DS_CHECK(p >= 0 && p < static_cast<int>(params.size()), "param id ", p, " of ", params.size());
  const UnitInfo& unit = units.at(static_cast<size_t>(params[static_cast<size_t>(p)].unit));
  int64_t offset = 0;
  for (ParamId q : unit.params) {
    if (q == p) return offset;
    offset += params[static_cast<size_t>(q)].numel;
  }
  DS_UNREACHABLE("param ", params[static_cast<size_t>(p)].name, " is not listed in its unit ", unit.name);
}

std::vector<int> ModelLayout::grad_ready_module() const {
  std::vector<int> ready(units.size(), -1);
  // Modules in forward order: the first reader of a unit is the last one backward visits.
  for (int m = 0; m < static_cast<int>(modules.size()); ++m)
    for (int u : modules[static_cast<size_t>(m)].units)
      if (ready.at(static_cast<size_t>(u)) < 0) ready[static_cast<size_t>(u)] = m;
  for (size_t u = 0; u < units.size(); ++u)
    DS_CHECK(ready[u] >= 0, "unit ", units[u].name, " is read by no module");
  return ready;
}

ParamId ModelLayout::find_param(const std::string& name) const {
  for (size_t p = 0; p < params.size(); ++p)
    if (params[p].name == name) return static_cast<ParamId>(p);
  throw UsageError("no parameter named '" + name + "' in this model (names follow Hugging Face GPT-2, e.g. "
                   "'transformer.h.0.attn.c_attn.weight')");
}

}  // namespace ds::model
