#include "qmp/socket.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "base/error.h"

namespace vmshift::qmp {

UniqueFd prepare_fd(UniqueFd fd) {
  if (!fd) throw Error(ErrorCode::kInvalidArgument, "QMP session needs a valid file descriptor");
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
    throw_errno(ErrorCode::kIo, errno, "cannot make the QMP socket non-blocking");
  int fdflags = ::fcntl(fd.get(), F_GETFD);
  if (fdflags < 0 || ::fcntl(fd.get(), F_SETFD, fdflags | FD_CLOEXEC) < 0)
    throw_errno(ErrorCode::kIo, errno, "cannot make the QMP socket close-on-exec");
  return fd;
}

UniqueFd connect_unix(const std::string& path, Deadline deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("QMP socket path '{}' is {} bytes; a UNIX socket path must be 1 to {} "
                            "bytes",
                            path, path.size(), sizeof addr.sun_path - 1));
  std::memcpy(addr.sun_path, path.data(), path.size());

  auto backoff = std::chrono::milliseconds(5);
  int last_errno = 0;
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw_errno(ErrorCode::kIo, errno, "cannot create a UNIX socket");
    // Non-blocking: a blocking connect() waits without limit while the
    // server's backlog is full (QEMU queues only a few clients it does not
    // accept). A non-blocking one on a UNIX socket succeeds or fails at once;
    // EAGAIN (backlog full) is retried like ECONNREFUSED.
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return prepare_fd(std::move(fd));
    last_errno = errno;
    if (last_errno != ENOENT && last_errno != ECONNREFUSED && last_errno != EAGAIN &&
        last_errno != EINTR)
      throw_errno(ErrorCode::kConnection, last_errno,
                  fmt::format("cannot connect to QMP socket '{}'", path));
    if (deadline.expired())
      throw Error(
          ErrorCode::kTimeout,
          fmt::format("QMP socket '{}' did not accept a connection before the deadline "
                      "(last error: {}{})",
                      path, std::strerror(last_errno),
                      last_errno == EAGAIN ? "; is another client holding the QMP socket?" : ""));
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(backoff, deadline.remaining()));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
  }
}

}  // namespace vmshift::qmp
