// Errors a user can cause. Each type has its own exit code, so scripts can tell a bad flag from a
// dead rank; every message names the thing, the value and the fix (STYLE.md, "two layers of errors").
// Broken internal invariants are not errors of this kind: they abort through DS_CHECK (check.hpp).
#pragma once

#include <stdexcept>
#include <string>

namespace ds {

// Exit codes of dslaunch and dsworker for errors they detect themselves. A failing rank's own exit
// code (or 128+signal) takes precedence over these in dslaunch, as a shell would report it.
enum class ExitCode : int {
  ok = 0,
  internal = 1,          // a bug: an invariant broke (also: uncaught std::exception)
  usage = 2,             // bad command-line flag or value
  hostfile = 3,          // hostfile, --include/--exclude, slot selection
  config = 4,            // ds_config.json: unknown key, type, range, batch arithmetic
  rendezvous = 5,        // store unreachable, rendezvous or wait timed out, bad job token
  port_in_use = 6,       // --master_port already bound
  resources = 7,         // not enough GPU or host memory, missing GPU, missing program
  checkpoint = 8,        // missing, corrupt or incompatible checkpoint
  io = 9,                // data files, log directories, output files
  communication = 10,    // a peer vanished or a collective failed
  numerics = 11,         // NaN/inf that cannot be skipped, loss scale at its minimum
};

// Base of every user-facing error. what() is the whole message, ready to print after "error: ".
class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), m_code(code) {}
  ExitCode code() const noexcept { return m_code; }
  int exit_code() const noexcept { return static_cast<int>(m_code); }

 private:
  ExitCode m_code;
};

#define DS_DECLARE_ERROR(Name, code_)                                        \
  class Name : public ::ds::Error {                                          \
   public:                                                                   \
    explicit Name(const std::string& message) : Error(code_, message) {}     \
  }

DS_DECLARE_ERROR(UsageError, ExitCode::usage);
DS_DECLARE_ERROR(HostfileError, ExitCode::hostfile);
DS_DECLARE_ERROR(ConfigError, ExitCode::config);
DS_DECLARE_ERROR(RendezvousError, ExitCode::rendezvous);
DS_DECLARE_ERROR(RendezvousTimeout, ExitCode::rendezvous);
DS_DECLARE_ERROR(PortInUse, ExitCode::port_in_use);
DS_DECLARE_ERROR(ResourceError, ExitCode::resources);
DS_DECLARE_ERROR(CheckpointError, ExitCode::checkpoint);
DS_DECLARE_ERROR(IoError, ExitCode::io);
DS_DECLARE_ERROR(CommError, ExitCode::communication);
DS_DECLARE_ERROR(NumericsError, ExitCode::numerics);

// Store-level failures (connection lost, server gone, protocol violation). A RendezvousError, so
// that main maps it to the rendezvous exit code.
DS_DECLARE_ERROR(StoreError, ExitCode::rendezvous);

}  // namespace ds
