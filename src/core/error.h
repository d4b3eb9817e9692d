#pragma once
// Typed errors. Library code throws; only main() turns an Error into an exit code.

#include <stdexcept>
#include <string>

namespace ddp {

// Process exit codes; the README's "Exit codes" section documents them.
enum class ExitCode : int {
  kOk = 0,
  kRuntime = 1,     // MPI/IO failures, replica drift, diverged loss
  kUsage = 2,       // bad config or command line
  kData = 3,        // bad data file
  kCheckpoint = 4,  // bad checkpoint
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }
  // True once every rank knows about this error (see run_agreed), so no rank needs aborting.
  bool agreed() const { return agreed_; }
  // `reporter`: the one rank that prints it (the others stay quiet); rank 0 for a verdict that
  // every rank reached alike.
  void mark_agreed(int reporter = 0) {
    agreed_ = true;
    reporter_ = reporter;
  }
  int reporter() const { return reporter_; }

 private:
  ExitCode code_;
  bool agreed_ = false;
  int reporter_ = 0;
};

class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(ExitCode::kUsage, message) {}
};

class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error(ExitCode::kData, message) {}
};

class CheckpointError : public Error {
 public:
  explicit CheckpointError(const std::string& message) : Error(ExitCode::kCheckpoint, message) {}
};

class RuntimeError : public Error {
 public:
  explicit RuntimeError(const std::string& message) : Error(ExitCode::kRuntime, message) {}
};

// This process's place in the job, "[rank R on HOST] " where there are several ranks: the start of
// its error lines. ddp_train sets it once the world exists; lines composed where no communicator
// can be asked read it (the SIGBUS handler's, written when a file is mapped: Note [mapped
// features]).
inline std::string& error_line_prefix() {
  static std::string prefix;
  return prefix;
}

}  // namespace ddp
