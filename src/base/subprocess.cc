#include "base/subprocess.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "base/error.h"

extern char** environ;

namespace vmshift {
namespace {

// The fds a child gets as stdin/stdout/stderr are kept above 2: if this
// process runs with one of 0..2 closed, a new fd could land on it, and the
// child's dup2(fd, fd) would then leave it close-on-exec, i.e. closed.
UniqueFd above_stdio(int fd) {
  UniqueFd owned(fd);
  if (fd < 0 || fd > 2) return owned;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) throw_errno(ErrorCode::kIo, errno, "fcntl(F_DUPFD_CLOEXEC)");
  return UniqueFd(moved);
}

UniqueFd open_or_throw(const char* path, int flags, mode_t mode = 0) {
  int fd = ::open(path, flags | O_CLOEXEC, mode);
  if (fd < 0) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot open '{}'", path));
  return above_stdio(fd);
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(ErrorCode::kIo, errno, "pipe2");
  return Pipe{above_stdio(fds[0]), above_stdio(fds[1])};
}

// "NAME=value" -> "NAME"
std::string_view env_name(std::string_view entry) { return entry.substr(0, entry.find('=')); }

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

ExitStatus decode(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

std::string tail(const std::string& text, std::size_t max_bytes) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t.size() <= max_bytes) return t;
  return "..." + t.substr(t.size() - max_bytes);
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal != 0) return fmt::format("was killed by signal {} ({})", signal, ::strsignal(signal));
  return fmt::format("exited with status {}", code);
}

std::optional<std::string> find_program(std::string_view name) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string_view::npos) {
    std::string p(name);
    return is_executable_file(p) ? std::optional(p) : std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string_view::npos) end = path.size();
    std::string dir(path.substr(start, end - start));
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + std::string(name);
    if (is_executable_file(candidate)) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

std::string describe_argv(std::span<const std::string> argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !arg.empty() && arg.find_first_not_of(
                                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      out += arg;
    } else {
      out += '\'';
      for (char c : arg) {
        if (c == '\'')
          out += "'\\''";
        else
          out += c;
      }
      out += '\'';
    }
  }
  return out;
}

Process::Process(pid_t pid, UniqueFd pidfd, UniqueFd out, UniqueFd err)
    : pid_(pid), pidfd_(std::move(pidfd)), stdout_(std::move(out)), stderr_(std::move(err)) {}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)),
      status_(std::move(other.status_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) kill();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    stdout_ = std::move(other.stdout_);
    stderr_ = std::move(other.stderr_);
    status_ = std::move(other.status_);
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0 && !status_) kill();
}

std::optional<ExitStatus> Process::reap(bool block) {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  int wstatus = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &wstatus, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = decode(wstatus);
    pidfd_.reset();
  } else if (r < 0) {
    // ECHILD: someone else reaped it (e.g. SIGCHLD set to SIG_IGN); treat as gone.
    status_ = ExitStatus{};
    pidfd_.reset();
  }
  return status_;
}

bool Process::running() { return pid_ > 0 && !reap(false); }

std::optional<ExitStatus> Process::wait(Deadline deadline) {
  for (;;) {
    if (auto s = reap(false)) return s;
    if (deadline.expired()) return std::nullopt;
    if (pidfd_) {
      pollfd p{pidfd_.get(), POLLIN, 0};
      int r = ::poll(&p, 1, deadline.poll_timeout_ms());
      if (r < 0 && errno != EINTR) throw_errno(ErrorCode::kIo, errno, "poll on child process");
    } else {
      // No pidfd (old kernel): poll the exit status every 10 ms until the deadline.
      std::this_thread::sleep_for(std::min(deadline.remaining(), std::chrono::milliseconds(10)));
    }
  }
}

void Process::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

ExitStatus Process::terminate(Deadline grace) {
  signal(SIGTERM);
  if (auto s = wait(grace)) return *s;
  return kill();
}

pid_t Process::release() {
  pid_t pid = pid_;
  pid_ = -1;
  pidfd_.reset();
  return pid;
}

ExitStatus Process::kill() {
  signal(SIGKILL);
  auto s = reap(true);
  return s.value_or(ExitStatus{});
}

Process spawn(std::span<const std::string> argv, const SpawnOptions& options) {
  if (argv.empty() || argv[0].empty())
    throw Error(ErrorCode::kInvalidArgument, "cannot run an empty command");
  auto path = find_program(argv[0]);
  if (!path)
    throw Error(ErrorCode::kNotFound,
                fmt::format("cannot run '{}': program not found in PATH", argv[0]));

  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls are allowed.
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  // extra_env replaces inherited variables of the same name (getenv returns
  // the first match, so a duplicate would not override).
  std::vector<char*> cenv;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    bool replaced = false;
    for (const auto& x : options.extra_env) replaced = replaced || env_name(x) == env_name(*e);
    if (!replaced) cenv.push_back(*e);
  }
  for (const auto& e : options.extra_env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  UniqueFd in = open_or_throw("/dev/null", O_RDONLY);
  UniqueFd out_file, err_file;
  if (options.stdout_file)
    out_file = open_or_throw(options.stdout_file->c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (options.stderr_file)
    err_file = open_or_throw(options.stderr_file->c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  Pipe out_pipe, err_pipe;
  if (options.pipe_stdout) out_pipe = make_pipe();
  if (options.pipe_stderr) err_pipe = make_pipe();
  int child_out = options.pipe_stdout ? out_pipe.write.get() : out_file ? out_file.get() : -1;
  int child_err = options.pipe_stderr ? err_pipe.write.get() : err_file ? err_file.get() : -1;
  Pipe exec_status = make_pipe();
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot start '{}'", argv[0]));
  if (pid == 0) {
    if (options.kill_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
    }
    if (options.new_session) ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(in.get(), 0);
    if (child_out >= 0) ::dup2(child_out, 1);
    if (child_err >= 0) ::dup2(child_err, 2);
    ::execve(path->c_str(), cargv.data(), cenv.data());
    int err = errno;
    [[maybe_unused]] auto n = ::write(exec_status.write.get(), &err, sizeof err);
    ::_exit(127);
  }

  exec_status.write.reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_status.read.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  // pidfd_open(2) by syscall: glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  Process proc(pid, std::move(pidfd), std::move(out_pipe.read), std::move(err_pipe.read));
  if (n == sizeof child_errno) {
    proc.kill();
    throw_errno(child_errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, child_errno,
                fmt::format("cannot run '{}'", *path));
  }
  return proc;
}

RunResult run(std::span<const std::string> argv, Deadline deadline, SpawnOptions options) {
  options.pipe_stdout = true;
  options.pipe_stderr = true;
  Process proc = spawn(argv, options);
  UniqueFd out = proc.take_stdout();
  UniqueFd err = proc.take_stderr();
  RunResult result;
  char buf[65536];
  while (out || err) {
    pollfd fds[2];
    int nfds = 0;
    if (out) fds[nfds++] = {out.get(), POLLIN, 0};
    if (err) fds[nfds++] = {err.get(), POLLIN, 0};
    int r = ::poll(fds, nfds, deadline.poll_timeout_ms());
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(ErrorCode::kIo, errno, "poll on child output");
    }
    if (r == 0) {
      proc.kill();
      throw Error(ErrorCode::kTimeout,
                  fmt::format("'{}' did not finish within its deadline and was killed",
                              describe_argv(argv)));
    }
    for (int i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      bool is_out = out && fds[i].fd == out.get();
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        (is_out ? out : err).reset();
      } else {
        (is_out ? result.out : result.err).append(buf, static_cast<std::size_t>(got));
      }
    }
  }
  auto status = proc.wait(deadline);
  if (!status) {
    proc.kill();
    throw Error(ErrorCode::kTimeout,
                fmt::format("'{}' closed its output but did not exit within its deadline",
                            describe_argv(argv)));
  }
  result.status = *status;
  return result;
}

RunResult run_checked(std::span<const std::string> argv, Deadline deadline, SpawnOptions options) {
  RunResult r = run(argv, deadline, std::move(options));
  if (!r.status.success()) {
    std::string detail = tail(r.err.empty() ? r.out : r.err, 2000);
    throw Error(ErrorCode::kCommandFailed,
                fmt::format("'{}' {}{}{}", describe_argv(argv), r.status.describe(),
                            detail.empty() ? "" : ": ", detail));
  }
  return r;
}

}  // namespace vmshift
