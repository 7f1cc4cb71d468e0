// The one error vocabulary of vmshift.
//
// Every layer throws vmshift::Error (or a subclass that adds detail, such as
// qmp::CommandError). The code says what kind of failure it was, so a caller
// can decide what to do; the message is a sentence for the user that says
// what failed and, where it matters, what state things were left in.
//
//   Error
//    +-- qmp::CommandError   QEMU answered a command with an error reply
//
// Messages do not repeat the message of an error they wrap: a caller that
// adds context writes "context: " + inner.what().
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace vmshift {

enum class ErrorCode {
  kInvalidArgument,     // the caller passed something that can never work
  kNotFound,            // a named thing (file, key, VM, job) does not exist
  kAlreadyExists,       // refusing to overwrite or duplicate something
  kFailedPrecondition,  // the operation is not allowed in the current state
  kTimeout,             // a deadline passed before the wait was over
  kConnection,          // a peer could not be reached or hung up
  kProtocol,            // a peer broke the protocol (malformed or unexpected data)
  kBadData,             // data has the wrong syntax or shape (JSON, config)
  kCommandFailed,       // a peer carried out a request and reported failure
  kIo,                  // a system call on a file, pipe or socket failed
  kCancelled,           // stopped on request
  kInternal,            // a bug in vmshift
};

std::string_view to_string(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Throws Error(code, "<what>: <strerror(err)>").
[[noreturn]] void throw_errno(ErrorCode code, int err, std::string_view what);

}  // namespace vmshift
