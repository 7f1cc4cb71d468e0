// Parsing one QMP message (one line) from the server into its kind.
// Pure and stateless: the session routes what this returns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"

namespace vmshift::qmp {

struct QemuVersion {
  int major = 0;
  int minor = 0;
  int micro = 0;
  std::string package;
  std::string to_string() const;  // "7.2.22 (Debian 1:7.2+dfsg-7)"
};

struct Greeting {
  QemuVersion version;
  std::vector<std::string> capabilities;  // offered by QEMU, e.g. "oob"
};

struct Event {
  std::string name;
  Json data;                 // the event's "data" (an empty object when QEMU sent none)
  std::int64_t seconds = 0;  // QEMU's timestamp
  std::int64_t microseconds = 0;
  std::uint64_t sequence = 0;  // order of arrival in the session, from 1
};

struct Message {
  enum class Kind { kGreeting, kEvent, kReply, kUnknown };
  Kind kind = Kind::kUnknown;
  Greeting greeting;              // kGreeting
  Event event;                    // kEvent (sequence is set by the session)
  std::optional<std::string> id;  // kReply: the id, when it is a string
  Json body;                      // kReply: the whole message
};

// Throws Error(kProtocol) for malformed JSON, a value that is not an object,
// or a greeting or event of the wrong shape. A reply's "return"/"error" is
// checked by the caller that awaits it.
Message parse_message(std::string_view line);

// The start of a message for logs and errors: at most max_bytes, and the
// total size when cut.
std::string preview(std::string_view line, std::size_t max_bytes);

}  // namespace vmshift::qmp
