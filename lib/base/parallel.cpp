#include "base/parallel.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ds {
namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return (end && *end == '\0' && x > 0 && x < 4096) ? static_cast<int>(x) : 0;
}

int default_threads() {
  if (int t = env_int("DSLAUNCH_NUM_THREADS")) return t;
  if (int t = env_int("OMP_NUM_THREADS")) return t;
  cpu_set_t set;
  int cores = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = CPU_COUNT(&set);
  if (cores <= 0) cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int local = env_int("LOCAL_WORLD_SIZE");
  if (local > 0) cores = std::max(1, cores / local);
  return std::max(1, cores);
}

// A simple fork-join pool: the caller runs chunk 0, workers run the rest.
class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return m_size; }

  void resize(int threads) {
    stop();
    m_size = std::max(1, threads);
    m_stopping = false;
    // New workers must not mistake an earlier region's generation for a new one (they would run
    // a chunk of a finished region, whose function is gone): they start from the current one.
    const uint64_t generation = m_generation;
    for (int i = 1; i < m_size; ++i) m_workers.emplace_back([this, i, generation] { worker(i, generation); });
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t max_chunks = grain > 0 ? (n + grain - 1) / grain : n;
    const int chunks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(m_size, max_chunks)));
    if (chunks == 1 || t_inside) {
      fn(0, n);
      return;
    }
    std::unique_lock lock(m_mutex);
    m_fn = &fn;
    m_n = n;
    m_chunks = chunks;
    m_pending = chunks - 1;
    m_error = nullptr;
    ++m_generation;
    lock.unlock();
    m_cv.notify_all();
    run_chunk(0);
    lock.lock();
    m_done_cv.wait(lock, [&] { return m_pending == 0; });
    m_fn = nullptr;
    if (m_error) std::rethrow_exception(m_error);
  }

 private:
  void run_chunk(int chunk) {
    const int64_t begin = m_n * chunk / m_chunks;
    const int64_t end = m_n * (chunk + 1) / m_chunks;
    t_inside = true;
    try {
      if (begin < end) (*m_fn)(begin, end);
    } catch (...) {
      std::lock_guard lock(m_mutex);
      if (!m_error) m_error = std::current_exception();
    }
    t_inside = false;
  }

  void worker(int index, uint64_t seen) {
    while (true) {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] { return m_stopping || m_generation != seen; });
      if (m_stopping) return;
      seen = m_generation;
      if (index >= m_chunks) continue;
      lock.unlock();
      run_chunk(index);
      lock.lock();
      if (--m_pending == 0) m_done_cv.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_cv.notify_all();
    for (auto& t : m_workers) t.join();
    m_workers.clear();
  }

  static thread_local bool t_inside;
  int m_size = 1;
  std::vector<std::thread> m_workers;
  std::mutex m_mutex;
  std::condition_variable m_cv, m_done_cv;
  const std::function<void(int64_t, int64_t)>* m_fn = nullptr;
  int64_t m_n = 0;
  int m_chunks = 0;
  int m_pending = 0;
  uint64_t m_generation = 0;
  bool m_stopping = false;
  std::exception_ptr m_error;
};

thread_local bool Pool::t_inside = false;

std::mutex g_pool_mutex;  // serialises parallel regions started from different threads

Pool& pool() {
  static Pool instance(default_threads());
  return instance;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int threads) {
  std::lock_guard lock(g_pool_mutex);
  pool().resize(threads);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n <= grain) {
    fn(0, n);
    return;
  }
  std::unique_lock lock(g_pool_mutex, std::try_to_lock);
  if (!lock.owns_lock()) {  // another thread (e.g. the comm thread) holds the pool: run serially
    fn(0, n);
    return;
  }
  pool().run(n, grain, fn);
}

}  // namespace ds
