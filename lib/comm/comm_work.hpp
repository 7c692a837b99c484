// The Work every CPU communicator hands out: a one-shot completion flag plus the op's error.
// Finished by the thread that runs the op; waited on by any thread.
#pragma once

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>

#include "comm/comm.hpp"

namespace ds::comm {

class CommWork final : public Work {
 public:
  void wait() override;
  bool done() override;

  // Marks the op finished; error is null on success. Called once.
  void finish(std::exception_ptr error);

  // A Work that is already finished successfully (ops that complete on the calling thread).
  static std::shared_ptr<Work> finished();

 private:
  std::mutex m_mutex;
  std::condition_variable m_done_cv;
  bool m_done = false;
  std::exception_ptr m_error;
};

}  // namespace ds::comm
