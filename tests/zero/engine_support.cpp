#include "zero/engine_support.hpp"

#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include "model/gpt.hpp"
#include "model/gpt_layout.hpp"
#include "comm/comm_gloo.hpp"
#include "comm/comm_single.hpp"
#include "device/device.hpp"
#include "store/memory_store.hpp"

namespace ds::test {
namespace {

std::atomic<int> g_run_counter{0};

uint32_t hash3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^ (c + 17) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return static_cast<uint32_t>(x);
}

}  // namespace

model::GptConfig small_gpt() {
  // 2 layers, 2 heads, 24 wide, vocab 61: unit sizes like 61·24, 16·24 and the blocks' 12·24²+13·24
  // are not multiples of 2, 3 or 4 ranks times the 16-element alignment, so padding is exercised.
  return model::parse_model_spec("n_layer=2,n_head=2,n_embd=24,seq_len=16,vocab_size=61,padded_vocab_size=61");
}

zero::EngineOptions default_options(const model::GptConfig& model, int stage) {
  zero::EngineOptions o;
  o.stage = stage;
  o.overlap_comm = stage == 3 ? zero::Overlap::yes : zero::Overlap::no;
  const auto layout = model::gpt_layout(model);
  o.optimizer.groups = {{.name = "decay", .lr = 1e-2, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8},
                        {.name = "no_decay", .lr = 1e-2, .weight_decay = 0.0, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8}};
  for (const auto& p : layout.params) o.optimizer.group_of_param.push_back(p.weight_decay ? 0 : 1);
  return o;
}

EngineResult run_engine(const EngineRun& run) {
  const auto layout = model::gpt_layout(run.model);
  store::MemoryStore store(std::chrono::seconds(60));
  const std::string prefix = "engine-test-" + std::to_string(g_run_counter++);
  EngineResult result;
  int64_t total = 0;
  for (const auto& u : layout.units) total += u.numel;
  result.master.assign(static_cast<size_t>(total), NAN);
  result.exp_avg.assign(static_cast<size_t>(total), NAN);
  result.losses.assign(static_cast<size_t>(run.steps - run.start_step), std::vector<float>(static_cast<size_t>(run.world), 0.0f));
  result.memory.resize(static_cast<size_t>(run.world));
  std::vector<int64_t> unit_start;
  {
    int64_t s = 0;
    for (const auto& u : layout.units) {
      unit_start.push_back(s);
      s += u.numel;
    }
  }
  std::mutex mutex;
  std::exception_ptr error;

  auto rank_main = [&](int rank) {
    try {
      std::unique_ptr<comm::Comm> comm;
      if (run.world == 1) comm = comm::make_single_rank_comm();
      else comm = comm::make_gloo_comm(store, {.rank = rank, .size = run.world, .prefix = prefix,
                                                  .timeout = std::chrono::milliseconds(60'000)});
      auto device = device::make_cpu_device();
      zero::EngineOptions options = run.options;
      options.grad_accum_steps = run.grad_accum;
      model::Gpt gpt(run.model, options.compute_dtype);
      zero::Engine engine(options, gpt.layout(), *comm, *device, run.seed);
      if (run.after_init) run.after_init(engine, *comm);
      const int B = run.micro_batch, T = run.seq_len;
      std::vector<int32_t> inputs(static_cast<size_t>(B * T)), targets(static_cast<size_t>(B * T));
      for (int step = run.start_step; step < run.steps; ++step) {
        float loss_sum = 0.0f;
        for (int k = 0; k < run.grad_accum; ++k) {
          for (int i = 0; i < B; ++i) {
            const int64_t j = (static_cast<int64_t>(k) * run.world + rank) * B + i;
            for (int t = 0; t <= T; ++t) {
              const int32_t tok = static_cast<int32_t>(hash3(static_cast<uint64_t>(step), static_cast<uint64_t>(j),
                                                             static_cast<uint64_t>(t)) % static_cast<uint32_t>(run.model.vocab_size));
              if (t < T) inputs[static_cast<size_t>(i * T + t)] = tok;
              if (t > 0) targets[static_cast<size_t>(i * T + t - 1)] = tok;
            }
          }
          loss_sum += gpt.forward(engine, inputs.data(), targets.data(), B, T);
          gpt.backward(engine, engine.backward_scale());
        }
        std::vector<zero::GroupValues> lrs(options.optimizer.groups.size(), zero::GroupValues{.lr = run.lr});
        auto step_result = engine.step(lrs);
        {
          std::lock_guard lock(mutex);
          result.losses[static_cast<size_t>(step - run.start_step)][static_cast<size_t>(rank)] = loss_sum / static_cast<float>(run.grad_accum);
          if (rank == 0) result.steps.push_back(step_result);
        }
        if (run.after_step) run.after_step(engine, *comm, step);
      }
      // Collect the owned slices (together they cover the model once).
      std::lock_guard lock(mutex);
      for (size_t u = 0; u < layout.units.size(); ++u) {
        auto [b, e] = engine.owned_slice(static_cast<int>(u));
        if (b >= e) continue;
        engine.read_state(static_cast<int>(u), b, e - b, zero::Engine::StateTensor::master, result.master.data() + unit_start[u] + b);
        engine.read_state(static_cast<int>(u), b, e - b, zero::Engine::StateTensor::exp_avg, result.exp_avg.data() + unit_start[u] + b);
      }
      result.memory[static_cast<size_t>(rank)] = engine.memory();
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < run.world; ++r) threads.emplace_back(rank_main, r);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  return result;
}

double rel_l2_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace ds::test
