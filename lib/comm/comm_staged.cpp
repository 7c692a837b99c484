// StagedComm (comm/comm_staged.hpp).
#include "comm/comm_staged.hpp"

#include "comm/comm_work.hpp"

namespace ds::comm {
namespace {

class StagedComm final : public Comm {
 public:
  StagedComm(std::unique_ptr<Comm> inner, device::Device& device) : m_inner(std::move(inner)), m_device(device) {}

  int rank() const override { return m_inner->rank(); }
  int size() const override { return m_inner->size(); }
  std::string describe() const override { return m_inner->describe() + " (GPU buffers staged through pinned host memory)"; }

 protected:
  std::shared_ptr<Work> start_all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op) override {
    if (!device::is_gpu_pointer(buf)) return m_inner->all_reduce(buf, count, dtype, op);
    const size_t bytes = static_cast<size_t>(count) * dtype_size(dtype);
    void* host = stage(0, bytes);
    device::copy_bytes_anywhere(host, buf, bytes);
    m_inner->all_reduce(host, count, dtype, op)->wait();
    device::copy_bytes_anywhere(buf, host, bytes);
    return CommWork::finished();
  }
  std::shared_ptr<Work> start_reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                             ReduceOp op) override {
    if (!device::is_gpu_pointer(send) && !device::is_gpu_pointer(recv))
      return m_inner->reduce_scatter(send, recv, recv_count, dtype, op);
    const size_t recv_bytes = static_cast<size_t>(recv_count) * dtype_size(dtype);
    const size_t send_bytes = recv_bytes * static_cast<size_t>(size());
    void* hs = stage(0, send_bytes);
    void* hr = stage(1, recv_bytes);
    device::copy_bytes_anywhere(hs, send, send_bytes);
    m_inner->reduce_scatter(hs, hr, recv_count, dtype, op)->wait();
    device::copy_bytes_anywhere(recv, hr, recv_bytes);
    return CommWork::finished();
  }
  std::shared_ptr<Work> start_all_gather(const void* send, void* recv, int64_t send_count, DType dtype) override {
    if (!device::is_gpu_pointer(send) && !device::is_gpu_pointer(recv))
      return m_inner->all_gather(send, recv, send_count, dtype);
    const size_t send_bytes = static_cast<size_t>(send_count) * dtype_size(dtype);
    const size_t recv_bytes = send_bytes * static_cast<size_t>(size());
    void* hs = stage(0, send_bytes);
    void* hr = stage(1, recv_bytes);
    device::copy_bytes_anywhere(hs, send, send_bytes);
    m_inner->all_gather(hs, hr, send_count, dtype)->wait();
    device::copy_bytes_anywhere(recv, hr, recv_bytes);
    return CommWork::finished();
  }
  std::shared_ptr<Work> start_broadcast(void* buf, int64_t count, DType dtype, int root) override {
    if (!device::is_gpu_pointer(buf)) return m_inner->broadcast(buf, count, dtype, root);
    const size_t bytes = static_cast<size_t>(count) * dtype_size(dtype);
    void* host = stage(0, bytes);
    device::copy_bytes_anywhere(host, buf, bytes);
    m_inner->broadcast(host, count, dtype, root)->wait();
    device::copy_bytes_anywhere(buf, host, bytes);
    return CommWork::finished();
  }
  std::shared_ptr<Work> start_barrier() override {
    m_inner->barrier();
    return CommWork::finished();
  }

 private:
  // Staging buffer `which` with at least `bytes`; grown (never shrunk) as collectives need.
  void* stage(int which, size_t bytes) {
    device::Buffer& b = m_stage[which];
    if (b.bytes() < bytes) {
      b.reset();
      b = m_device.alloc(bytes, device::MemoryKind::pinned_host);
    }
    return b.data();
  }

  std::unique_ptr<Comm> m_inner;
  device::Device& m_device;
  device::Buffer m_stage[2];
};

}  // namespace

std::unique_ptr<Comm> make_device_staged_comm(std::unique_ptr<Comm> host_comm, device::Device& device) {
  return std::make_unique<StagedComm>(std::move(host_comm), device);
}

}  // namespace ds::comm
