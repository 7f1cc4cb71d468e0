// A QMP session with QEMU.
//
//   Disconnected --connect()/attach()--> Negotiating --greeting, qmp_capabilities--> Ready
//        any state --close(), peer hang-up, protocol violation--> Closed (terminal)
//
// One I/O thread per session owns the socket: it writes queued commands and
// reads every message. Replies are routed to the caller whose "id" they carry;
// a reply with an id nobody waits for (e.g. after that caller's deadline
// passed) is dropped, as the QMP spec says. Events are queued until a caller
// takes them with wait_for_event() or take_events(), so an event that arrives
// while a command runs is not lost. When the connection ends, every pending
// call fails at once with the reason.
//
// Callers wait on a condition variable with their own deadline; no lock is
// held while waiting on QEMU. All public methods are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/deadline.h"
#include "base/error.h"
#include "base/json.h"
#include "base/unique_fd.h"
#include "qmp/line_reader.h"
#include "qmp/message.h"

namespace vmshift::qmp {

enum class State { kDisconnected, kNegotiating, kReady, kClosed };
std::string_view to_string(State state) noexcept;

// QEMU answered a command with {"error": {"class": ..., "desc": ...}}.
class CommandError : public Error {
 public:
  CommandError(std::string command, std::string error_class, std::string desc);
  const std::string& command() const noexcept { return command_; }
  const std::string& error_class() const noexcept { return class_; }
  const std::string& desc() const noexcept { return desc_; }

 private:
  std::string command_;
  std::string class_;
  std::string desc_;
};

using EventMatcher = std::function<bool(const Event&)>;

struct ClientOptions {
  std::size_t max_message_bytes = LineReader::kDefaultMaxLine;
  std::size_t max_queued_events = 10000;  // the oldest are dropped beyond this (and counted)
  std::string name = "qmp";               // shown in log lines, e.g. the VM or socket
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();  // close()

  // Connects to QEMU's QMP UNIX socket (retrying while it does not exist yet),
  // reads the greeting and sends qmp_capabilities. Only from kDisconnected.
  void connect(const std::string& socket_path, Deadline deadline);
  // The same over an already-connected stream socket.
  void attach(UniqueFd fd, Deadline deadline);

  State state() const;
  Greeting greeting() const;  // requires a state past kNegotiating

  // Runs a command and returns its "return" value. Throws CommandError for an
  // error reply, Error(kTimeout) at the deadline (the message says whether the
  // command had been sent), Error(kConnection/kProtocol) when the session
  // ends, Error(kFailedPrecondition) unless the session is ready.
  Json execute(std::string_view command, Deadline deadline);
  Json execute(std::string_view command, const Json& arguments, Deadline deadline);

  // Removes and returns the oldest queued event with this name for which
  // match (if given) returns true, waiting for one until the deadline. Events
  // queued before the call count. match runs under the session's lock: it
  // must only look at the event, never call the client.
  Event wait_for_event(std::string_view name, Deadline deadline);
  Event wait_for_event(std::string_view name, const EventMatcher& match, Deadline deadline);

  // Removes and returns every queued event, oldest first.
  std::vector<Event> take_events();
  std::uint64_t events_received() const;
  std::uint64_t events_dropped() const;

  // Ends the session; pending calls fail with Error(kConnection). Idempotent.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmshift::qmp
