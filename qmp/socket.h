// Connecting to a QMP server's UNIX socket.
#pragma once

#include <string>

#include "base/deadline.h"
#include "base/unique_fd.h"

namespace vmshift::qmp {

// Connects to the UNIX socket at path. While the socket does not exist yet or
// refuses connections (QEMU still starting), retries until the deadline.
// The returned fd is non-blocking and close-on-exec.
// Throws Error(kInvalidArgument) for a path too long for sockaddr_un,
// Error(kTimeout) when the deadline passes, Error(kConnection) otherwise.
UniqueFd connect_unix(const std::string& path, Deadline deadline);

// Makes an already-connected fd (e.g. one end of a socketpair) non-blocking
// and close-on-exec, as the session needs.
UniqueFd prepare_fd(UniqueFd fd);

}  // namespace vmshift::qmp
