#include "base/parallel.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <shared_mutex>
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

thread_local bool t_inside = false;  // this thread runs a chunk of a region

// Note [concurrent regions]: one pool of num_threads() - 1 workers serves every parallel region
// of the process, also regions started at the same time from different threads (the training
// thread and a CPU-Adam or comm thread). A region is cut into its chunks when it starts, from n
// and the pool size alone, so who runs a chunk never changes what it computes. The caller runs
// chunks of its own region (so a region always progresses, even when every worker is busy
// elsewhere); idle workers take the next chunk from the active regions in turn, so two regions
// running together share the workers about evenly instead of one of them running serially.
class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return m_size; }

  // Only while no region runs (set_num_threads holds the resize lock exclusively).
  void resize(int threads) {
    stop();
    m_size = std::max(1, threads);
    m_stopping = false;
    for (int i = 1; i < m_size; ++i) m_workers.emplace_back([this] { worker(); });
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t max_chunks = grain > 0 ? (n + grain - 1) / grain : n;
    const int chunks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(m_size, max_chunks)));
    if (chunks == 1) {
      fn(0, n);
      return;
    }
    Region region{.fn = &fn, .n = n, .chunks = chunks};
    std::unique_lock lock(m_mutex);
    m_active.push_back(&region);
    m_work_cv.notify_all();
    // The caller works on its own region until every chunk is claimed, then waits for the rest.
    while (region.next < region.chunks) {
      const int chunk = claim(region);
      lock.unlock();
      run_chunk(region, chunk);
      lock.lock();
      ++region.finished;
    }
    m_done_cv.wait(lock, [&] { return region.finished == region.chunks; });
    if (region.error) std::rethrow_exception(region.error);
  }

 private:
  struct Region {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t n;
    int chunks;
    int next = 0;      // the first unclaimed chunk (under m_mutex)
    int finished = 0;  // chunks that returned (under m_mutex)
    std::exception_ptr error;
  };

  // Claims region's next chunk; removes the region from m_active once all are claimed. Under m_mutex.
  int claim(Region& region) {
    const int chunk = region.next++;
    if (region.next == region.chunks) m_active.erase(std::find(m_active.begin(), m_active.end(), &region));
    return chunk;
  }

  void run_chunk(Region& region, int chunk) {
    const int64_t begin = region.n * chunk / region.chunks;
    const int64_t end = region.n * (chunk + 1) / region.chunks;
    t_inside = true;
    try {
      if (begin < end) (*region.fn)(begin, end);
    } catch (...) {
      std::lock_guard lock(m_mutex);
      if (!region.error) region.error = std::current_exception();
    }
    t_inside = false;
  }

  void worker() {
    std::unique_lock lock(m_mutex);
    while (true) {
      m_work_cv.wait(lock, [&] { return m_stopping || !m_active.empty(); });
      if (m_stopping) return;
      Region& region = *m_active[m_turn++ % m_active.size()];  // regions in turn: a fair split
      const int chunk = claim(region);
      lock.unlock();
      run_chunk(region, chunk);
      lock.lock();
      if (++region.finished == region.chunks) m_done_cv.notify_all();
    }
  }

  void stop() {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_work_cv.notify_all();
    for (auto& t : m_workers) t.join();
    m_workers.clear();
  }

  int m_size = 1;
  std::vector<std::thread> m_workers;
  std::mutex m_mutex;
  std::condition_variable m_work_cv, m_done_cv;
  std::vector<Region*> m_active;  // regions with unclaimed chunks, in start order
  size_t m_turn = 0;
  bool m_stopping = false;
};


// Regions hold it shared, set_num_threads exclusively: the pool never resizes under a region.
std::shared_mutex g_resize_mutex;

Pool& pool() {
  static Pool instance(default_threads());
  return instance;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int threads) {
  std::unique_lock lock(g_resize_mutex);
  pool().resize(threads);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n <= grain || t_inside) {  // a region nested in a chunk runs serially in that chunk
    fn(0, n);
    return;
  }
  std::shared_lock lock(g_resize_mutex);
  pool().run(n, grain, fn);
}

}  // namespace ds
