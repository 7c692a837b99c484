#include "comm/comm_support.hpp"

#include <atomic>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ds::test {

void HostBuffer::set(int64_t i, float value) {
  visit_dtype(m_dtype, [&](auto tag) { static_cast<decltype(tag)*>(data())[i] = from_float<decltype(tag)>(value); });
}

float HostBuffer::get(int64_t i) const {
  return visit_dtype(m_dtype, [&](auto tag) { return to_float(static_cast<const decltype(tag)*>(data())[i]); });
}

void expect(bool ok, const std::string& message) {
  if (!ok) throw std::runtime_error(message);
}

void expect_values(const HostBuffer& buf, const std::function<float(int64_t)>& want, const std::string& what) {
  for (int64_t i = 0; i < buf.count(); ++i) {
    const float got = buf.get(i);
    if (got != want(i)) {
      std::ostringstream out;
      out << what << ": element " << i << " of " << buf.count() << " is " << got << ", want " << want(i);
      throw std::runtime_error(out.str());
    }
  }
}

std::vector<std::string> run_world(int size, const RankBody& body, const WorldOptions& options) {
  static std::atomic<int> worlds{0};
  store::MemoryStore store(options.timeout);
  const std::string prefix = "test-world-" + std::to_string(worlds++);
  std::vector<std::string> messages(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        std::unique_ptr<comm::Comm> comm = comm::make_gloo_comm(
            store, {.rank = rank,
                    .size = size,
                    .prefix = prefix,
                    .timeout = options.timeout,
                    .segment_bytes = options.segment_bytes,
                    .pipeline_depth = options.pipeline_depth});
        body(rank, comm);
      } catch (const std::exception& e) {
        messages[static_cast<size_t>(rank)] = std::string("threw: ") + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return messages;
}

std::string rank_failures(const std::vector<std::string>& messages) {
  std::string out;
  for (size_t r = 0; r < messages.size(); ++r)
    if (!messages[r].empty()) out += "rank " + std::to_string(r) + ": " + messages[r] + "\n";
  return out;
}

}  // namespace ds::test
