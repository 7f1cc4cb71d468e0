// Running external programs from argv vectors: never through a shell.
//
// A Process owns its child: when the Process is destroyed while the child
// still runs, the child is killed (SIGKILL) and reaped, so no child outlives
// the code that started it, also when that code fails.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/deadline.h"
#include "base/unique_fd.h"

namespace vmshift {

using Argv = std::vector<std::string>;

struct ExitStatus {
  int code = -1;   // exit code, or -1 when killed by a signal
  int signal = 0;  // terminating signal, or 0
  bool success() const { return signal == 0 && code == 0; }
  std::string describe() const;  // "exited with status 1", "was killed by signal 9 (Killed)"
};

struct SpawnOptions {
  // Where the child's stdout and stderr go: inherited unless a file (appended
  // to, created if missing) or a pipe (captured, see Process::take_stdout) is set.
  std::optional<std::string> stdout_file;
  std::optional<std::string> stderr_file;
  bool pipe_stdout = false;
  bool pipe_stderr = false;
  // Kill the child when the thread that spawned it exits (PR_SET_PDEATHSIG).
  // For test processes that must die with a crashed test binary; it fires on
  // the spawning *thread's* exit, so leave it off for children of workers.
  bool kill_with_parent = false;
  // Start the child in a new session (setsid): no terminal signals reach it.
  bool new_session = false;
  // Extra "NAME=value" entries added to the inherited environment.
  std::vector<std::string> extra_env;
};

class Process {
 public:
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  bool running();

  // Waits for the child to exit; nullopt if it still runs at the deadline.
  std::optional<ExitStatus> wait(Deadline deadline);
  // Sends a signal (no-op once reaped).
  void signal(int sig);
  // SIGTERM, then SIGKILL if it has not exited by the deadline.
  ExitStatus terminate(Deadline grace);
  ExitStatus kill();

  // Gives up ownership: the child is no longer killed when this object goes
  // (a background process that must outlive its parent). Returns its pid.
  pid_t release();

  // Read ends of the captured pipes (invalid unless requested in SpawnOptions).
  UniqueFd take_stdout() { return std::move(stdout_); }
  UniqueFd take_stderr() { return std::move(stderr_); }

 private:
  friend Process spawn(std::span<const std::string>, const SpawnOptions&);
  Process(pid_t pid, UniqueFd pidfd, UniqueFd out, UniqueFd err);
  std::optional<ExitStatus> reap(bool block);

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd stdout_;
  UniqueFd stderr_;
  std::optional<ExitStatus> status_;
};

// Starts argv[0] (looked up in $PATH unless it has a '/'). Throws
// Error(kNotFound) if the program does not exist, Error(kIo) if it cannot run.
Process spawn(std::span<const std::string> argv, const SpawnOptions& options = {});

struct RunResult {
  ExitStatus status;
  std::string out;
  std::string err;
};

// Runs argv to completion, capturing stdout and stderr. At the deadline the
// child is killed and Error(kTimeout) is thrown.
RunResult run(std::span<const std::string> argv, Deadline deadline, SpawnOptions options = {});

// As run(), but a non-zero exit throws Error(kCommandFailed) naming the
// command, its exit status and the end of its stderr.
RunResult run_checked(std::span<const std::string> argv, Deadline deadline,
                      SpawnOptions options = {});

// The full path of a program found in $PATH, or nullopt.
std::optional<std::string> find_program(std::string_view name);

// argv as one line for messages and logs (quoted where needed; never executed).
std::string describe_argv(std::span<const std::string> argv);

}  // namespace vmshift
