#include "qmp/message.h"

#include <fmt/format.h>

#include "base/error.h"

namespace vmshift::qmp {
namespace {

constexpr std::size_t kPreview = 200;

Greeting parse_greeting(const Json& msg) {
  try {
    Greeting g;
    Json qmp = msg.get("QMP");
    Json version = qmp.get("version");
    Json qemu = version.get("qemu");
    g.version.major = static_cast<int>(qemu.get_int("major"));
    g.version.minor = static_cast<int>(qemu.get_int("minor"));
    g.version.micro = static_cast<int>(qemu.get_int("micro"));
    g.version.package = version.find_string("package").value_or("");
    for (const Json& c : qmp.get("capabilities").items()) g.capabilities.push_back(c.as_string());
    return g;
  } catch (const Error& e) {
    throw Error(ErrorCode::kProtocol, fmt::format("QMP greeting is malformed: {}", e.what()));
  }
}

Event parse_event(const Json& msg) {
  try {
    Event ev;
    ev.name = msg.get_string("event");
    ev.data = msg.find("data").value_or(Json::object());
    if (auto ts = msg.find("timestamp")) {
      ev.seconds = ts->get_int("seconds");
      ev.microseconds = ts->get_int("microseconds");
    }
    return ev;
  } catch (const Error& e) {
    throw Error(ErrorCode::kProtocol, fmt::format("QMP event is malformed: {}", e.what()));
  }
}

}  // namespace

std::string QemuVersion::to_string() const {
  std::string v = fmt::format("{}.{}.{}", major, minor, micro);
  std::string_view pkg = package;
  while (!pkg.empty() && pkg.front() == ' ') pkg.remove_prefix(1);
  if (!pkg.empty()) v += fmt::format(" ({})", pkg);
  return v;
}

std::string preview(std::string_view line, std::size_t max_bytes) {
  if (line.size() <= max_bytes) return std::string(line);
  return fmt::format("{}... ({} bytes)", line.substr(0, max_bytes), line.size());
}

Message parse_message(std::string_view line) {
  Json msg;
  try {
    msg = Json::parse(line);
  } catch (const Error& e) {
    throw Error(ErrorCode::kProtocol, fmt::format("QMP peer sent invalid data: {}", e.what()));
  }
  if (!msg.is_object())
    throw Error(ErrorCode::kProtocol,
                fmt::format("QMP peer sent a JSON {} where an object was expected: {}",
                            to_string(msg.type()), preview(line, kPreview)));
  Message m;
  if (msg.has("QMP")) {
    m.kind = Message::Kind::kGreeting;
    m.greeting = parse_greeting(msg);
  } else if (msg.has("event")) {
    m.kind = Message::Kind::kEvent;
    m.event = parse_event(msg);
  } else if (msg.has("return") || msg.has("error")) {
    m.kind = Message::Kind::kReply;
    if (auto id = msg.find("id"); id && id->is_string()) m.id = id->as_string();
    m.body = std::move(msg);
  }
  return m;
}

}  // namespace vmshift::qmp
