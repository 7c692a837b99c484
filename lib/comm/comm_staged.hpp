// A communicator for GPU buffers over a host communicator (Gloo): every collective whose buffers
// are GPU memory is staged through pinned host memory (device -> host after the GPU's queued work,
// the host collective, host -> device), so the engine's device paths (bucketed all-reduce, stage 2/3
// reduce-scatter, stage 3 gathers) run with several ranks on GPUs without NCCL, e.g. 2 or 4 ranks
// sharing the one GPU of a test machine. Host buffers pass straight through. The staged ops complete
// before they return (no overlap): this is the correctness path; NCCL is the fast one.
#pragma once

#include <memory>

#include "comm/comm.hpp"
#include "device/device.hpp"

namespace ds::comm {

std::unique_ptr<Comm> make_device_staged_comm(std::unique_ptr<Comm> host_comm, device::Device& device);

}  // namespace ds::comm
