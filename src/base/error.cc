#include "base/error.h"

#include <fmt/format.h>

#include <cstring>

namespace vmshift {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kAlreadyExists:
      return "already exists";
    case ErrorCode::kFailedPrecondition:
      return "failed precondition";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kConnection:
      return "connection";
    case ErrorCode::kProtocol:
      return "protocol";
    case ErrorCode::kBadData:
      return "bad data";
    case ErrorCode::kCommandFailed:
      return "command failed";
    case ErrorCode::kIo:
      return "i/o";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(message), code_(code) {}

void throw_errno(ErrorCode code, int err, std::string_view what) {
  throw Error(code, fmt::format("{}: {}", what, std::strerror(err)));
}

}  // namespace vmshift
