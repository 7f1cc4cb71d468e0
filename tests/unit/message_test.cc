#include "qmp/message.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace vmshift::qmp {
namespace {

// Test that a greeting is recognised and its version and capabilities read.
TEST(Message, Greeting) {
  Message m = parse_message(
      R"({"QMP": {"version": {"qemu": {"micro": 1, "minor": 2, "major": 8}, "package": ""},)"
      R"( "capabilities": []}})");
  ASSERT_EQ(m.kind, Message::Kind::kGreeting);
  EXPECT_EQ(m.greeting.version.to_string(), "8.2.1");
  EXPECT_TRUE(m.greeting.capabilities.empty());
}

// Test that an event without data gets an empty object and its timestamp.
TEST(Message, EventWithoutData) {
  Message m = parse_message(R"({"timestamp": {"seconds": 5, "microseconds": 6}, "event": "STOP"})");
  ASSERT_EQ(m.kind, Message::Kind::kEvent);
  EXPECT_EQ(m.event.name, "STOP");
  EXPECT_TRUE(m.event.data.is_object());
  EXPECT_EQ(m.event.seconds, 5);
  EXPECT_EQ(m.event.microseconds, 6);
}

// Test that replies carry their string id, and a non-string id counts as none.
TEST(Message, ReplyIds) {
  Message a = parse_message(R"({"return": {}, "id": "vmshift-4"})");
  ASSERT_EQ(a.kind, Message::Kind::kReply);
  EXPECT_EQ(a.id, "vmshift-4");
  Message b = parse_message(R"({"error": {"class": "GenericError", "desc": "x"}, "id": 4})");
  ASSERT_EQ(b.kind, Message::Kind::kReply);
  EXPECT_EQ(b.id, std::nullopt);
  EXPECT_TRUE(b.body.has("error"));
}

// Test that a message of no known kind is reported as unknown, not an error.
TEST(Message, UnknownKind) {
  EXPECT_EQ(parse_message(R"({"something": "new"})").kind, Message::Kind::kUnknown);
}

// Test that malformed messages are protocol errors naming the problem.
TEST(Message, MalformedMessages) {
  auto message = [](std::string_view line) {
    try {
      parse_message(line);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kProtocol);
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(message(R"({"event": 5})"),
            "QMP event is malformed: key 'event': expected string, got integer");
  EXPECT_EQ(message(R"({"QMP": {"version": {"qemu": {}}}})"),
            "QMP greeting is malformed: missing key 'major'");
  EXPECT_EQ(message("\"text\""),
            "QMP peer sent a JSON string where an object was expected: \"text\"");
  EXPECT_EQ(message("{"),
            "QMP peer sent invalid data: malformed JSON: text ends inside a value (1 bytes)");
}

}  // namespace
}  // namespace vmshift::qmp
