// Tests of the test tool itself: the fake peer must catch what it claims to.
#include "support/fake_qmp_peer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "qmp/client.h"
#include "qmp/socket.h"
#include "support/qapi_schema.h"

namespace vmshift::testing {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

Deadline soon() { return Deadline::after(std::chrono::seconds(10)); }

// Test that a command other than the scripted one is reported, and the client gets an error.
TEST(FakeQmpPeer, ReportsUnexpectedCommand) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect("query-block").reply("[]");
  peer.start();
  qmp::Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_THROW(client.execute("query-status", soon()), qmp::CommandError);
  client.close();
  EXPECT_THAT(peer.take_failures(),
              ElementsAre("expected command 'query-block' got 'query-status'",
                          "scripted step 2 (expect command 'query-block') was never reached"));
}

// Test that differing arguments are reported with both values.
TEST(FakeQmpPeer, ReportsWrongArguments) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect("block-job-complete").with_args(R"({"device":"job0"})").reply("{}");
  peer.start();
  qmp::Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_THROW(client.execute("block-job-complete",
                              Json::object().set("device", Json::string("job1")), soon()),
               qmp::CommandError);
  client.close();
  auto failures = peer.take_failures();
  ASSERT_FALSE(failures.empty());
  EXPECT_EQ(
      failures[0],
      R"(command 'block-job-complete': expected arguments {"device":"job0"} got {"device":"job1"})");
}

// Test that a step the client never reached is reported.
TEST(FakeQmpPeer, ReportsUnusedSteps) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect("cont").reply("{}");
  peer.start();
  {
    qmp::Client client;
    client.connect(peer.socket_path(), soon());
  }
  EXPECT_THAT(peer.take_failures(),
              ElementsAre("scripted step 2 (expect command 'cont') was never reached"));
}

// Test that a command after the end of the script is reported.
TEST(FakeQmpPeer, ReportsCommandAfterScript) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.start();
  qmp::Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_THROW(client.execute("stop", Deadline::after(std::chrono::milliseconds(300))), Error);
  client.close();
  EXPECT_THAT(peer.take_failures(),
              ElementsAre(HasSubstr("unexpected command 'stop' after the end of the script")));
}

// Test that a command QEMU does not have is rejected when the client sends
// it, and the client gets QEMU's CommandNotFound, even where the script
// does not care which command comes.
TEST(FakeQmpPeer, RejectsUnknownCommandFromClient) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect("query-status").reply(R"({"status":"running","running":true})");
  peer.start();
  qmp::Client client;
  client.connect(peer.socket_path(), soon());
  try {
    client.execute("query-nothing", soon());
    ADD_FAILURE() << "query-nothing was accepted";
  } catch (const qmp::CommandError& e) {
    EXPECT_EQ(e.error_class(), "CommandNotFound");
  }
  client.close();
  EXPECT_THAT(peer.take_failures(),
              ElementsAre("QEMU 7.2.22 would reject command 'query-nothing' from the client: "
                          "QEMU has no command 'query-nothing'",
                          "scripted step 2 (expect command 'query-status') was never reached"));
}

// Scripts one command (without arguments, so the script accepts any), has
// the client send it with args_json, and returns the peer's failures. The
// client must get an error reply, as from QEMU.
std::vector<std::string> failures_of_sending(const std::string& command,
                                             const std::string& args_json) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect(command).reply("{}");
  peer.start();
  qmp::Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_THROW(client.execute(command, Json::parse(args_json), soon()), qmp::CommandError);
  client.close();
  return peer.take_failures();
}

// Test that a member QEMU does not know is rejected, naming command and member.
TEST(FakeQmpPeer, RejectsUnknownMemberFromClient) {
  EXPECT_THAT(failures_of_sending("block-job-complete", R"({"device":"job0","pivot":true})"),
              Contains("QEMU 7.2.22 would reject command 'block-job-complete' from the client: "
                       "block-job-complete: QEMU does not know member 'pivot'"));
}

// Test that a member of the wrong JSON type is rejected, naming command and member.
TEST(FakeQmpPeer, RejectsMistypedMemberFromClient) {
  EXPECT_THAT(failures_of_sending("block-job-set-speed", R"({"device":"job0","speed":"16M"})"),
              Contains("QEMU 7.2.22 would reject command 'block-job-set-speed' from the client: "
                       "block-job-set-speed.speed: expected int, got \"16M\""));
}

// Test that a missing mandatory member is rejected, naming command and member.
TEST(FakeQmpPeer, RejectsMissingMandatoryMemberFromClient) {
  EXPECT_THAT(failures_of_sending("blockdev-mirror", R"({"device":"src0","target":"dst0"})"),
              Contains("QEMU 7.2.22 would reject command 'blockdev-mirror' from the client: "
                       "blockdev-mirror.sync: required member missing"));
}

// Test that the members a union's tag selects are checked too: a typo in
// blockdev-add's nested file node is found.
TEST(FakeQmpPeer, ChecksUnionVariantMembers) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect("blockdev-add").reply("{}");
  peer.expect("blockdev-add").reply("{}");
  peer.start();
  qmp::Client client;
  client.connect(peer.socket_path(), soon());
  // As libqmp's image_node() builds it: accepted.
  client.execute("blockdev-add",
                 Json::parse(R"({"driver":"qcow2","node-name":"n0",)"
                             R"("file":{"driver":"file","filename":"/a.qcow2"}})"),
                 soon());
  EXPECT_THROW(client.execute("blockdev-add",
                              Json::parse(R"({"driver":"qcow2","node-name":"n1",)"
                                          R"("file":{"driver":"file","file":"/a.qcow2"}})"),
                              soon()),
               qmp::CommandError);
  client.close();
  EXPECT_THAT(peer.take_failures(),
              ElementsAre(AllOf(HasSubstr("QEMU 7.2.22 would reject command 'blockdev-add'"),
                                HasSubstr("blockdev-add.file.filename: required member missing"),
                                HasSubstr("blockdev-add.file: QEMU does not know member 'file'")),
                          "scripted step 3 (expect command 'blockdev-add') was never reached"));
}

// Test that scripted expectations are checked before the client connects:
// an unknown command, an unknown member, a mistyped and a missing member.
TEST(FakeQmpPeer, RejectsScriptedExpectationsOutsideTheSchema) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect("query-nothing").reply("{}");
  peer.expect("block-job-complete").with_args(R"({"device":"j","pivot":true})");
  peer.expect("block-job-set-speed").with_args(R"({"device":"j","speed":1.5})");
  peer.expect("block-job-cancel").with_args(R"({"force":true})");
  peer.expect("block-job-cancel").with_args(R"({"device":"j","force":true})");  // fits
  peer.start();
  {
    qmp::Client client;
    client.connect(peer.socket_path(), soon());
  }
  auto failures = peer.take_failures();
  EXPECT_THAT(
      failures,
      IsSupersetOf(
          {"scripted step 2 (expect command 'query-nothing'): QEMU 7.2.22 would reject it: "
           "QEMU has no command 'query-nothing'",
           "scripted step 3 (expect command 'block-job-complete'): QEMU 7.2.22 would reject it: "
           "block-job-complete: QEMU does not know member 'pivot'",
           "scripted step 4 (expect command 'block-job-set-speed'): QEMU 7.2.22 would reject "
           "it: block-job-set-speed.speed: expected int, got 1.5",
           "scripted step 5 (expect command 'block-job-cancel'): QEMU 7.2.22 would reject it: "
           "block-job-cancel.device: required member missing"}));
  EXPECT_THAT(failures, Not(Contains(HasSubstr("scripted step 6 (expect command "
                                               "'block-job-cancel'): QEMU"))));
}

// Test that scripted events are checked too: QEMU has no such event, or
// never sends it with these members.
TEST(FakeQmpPeer, RejectsScriptedEventsOutsideTheSchema) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.event("BLOCK_JOB_DONE", R"({"device":"j"})");
  peer.event("JOB_STATUS_CHANGE", R"({"id":"j","status":"finished"})");
  peer.event("BLOCK_JOB_READY", R"({"device":"j","len":1,"offset":1,"speed":0})");
  peer.event("JOB_STATUS_CHANGE", R"({"id":"j","status":"concluded"})");  // fits
  peer.event("STOP");                                                     // fits
  peer.start();
  {
    qmp::Client client;
    client.connect(peer.socket_path(), soon());
    client.wait_for_event("STOP", soon());  // every event was sent
  }
  EXPECT_THAT(
      peer.take_failures(),
      ElementsAre("scripted step 2 (event BLOCK_JOB_DONE): QEMU 7.2.22 never sends it: QEMU has "
                  "no event 'BLOCK_JOB_DONE'",
                  "scripted step 3 (event JOB_STATUS_CHANGE): QEMU 7.2.22 never sends it: "
                  "JOB_STATUS_CHANGE.status: 'finished' is not one of [\"undefined\",\"created\","
                  "\"running\",\"paused\",\"ready\",\"standby\",\"waiting\",\"pending\","
                  "\"aborting\",\"concluded\",\"null\"]",
                  "scripted step 4 (event BLOCK_JOB_READY): QEMU 7.2.22 never sends it: "
                  "BLOCK_JOB_READY.type: required member missing"));
}

// Test that a command's envelope is checked as QEMU checks it: only
// execute, arguments and id, and arguments that are an object.
TEST(FakeQmpPeer, RejectsUnexpectedEnvelopeMembers) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"execute":"qmp_capabilities","control":{}})",
       "QMP input member 'control' is unexpected"},
      {R"({"execute":"qmp_capabilities","arguments":null})",
       "QMP input member 'arguments' must be an object"},
  };
  for (const auto& [line, problem] : cases) {
    SCOPED_TRACE(line);
    FakeQmpPeer peer;
    peer.expect("qmp_capabilities").reply("{}");
    peer.start();
    UniqueFd fd = qmp::connect_unix(peer.socket_path(), soon());
    std::string out = line + "\n";
    ASSERT_EQ(::write(fd.get(), out.data(), out.size()), static_cast<ssize_t>(out.size()));
    auto failures = peer.take_failures();
    ASSERT_FALSE(failures.empty());
    EXPECT_EQ(failures[0],
              "QEMU 7.2.22 would reject command 'qmp_capabilities' from the client: " + problem);
  }
}

// Test that the recorded schema is the QEMU of the peer's greeting.
TEST(FakeQmpPeer, SchemaIsFromTheGreetingsQemu) {
  const QapiSchema& schema = QapiSchema::recorded();
  EXPECT_THAT(schema.qemu(), HasSubstr("version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"));
  EXPECT_THAT(FakeQmpPeer::qemu72_greeting(), HasSubstr("Debian 1:7.2+dfsg-7+deb12u18+b3"));
  EXPECT_EQ(schema.qemu_name(), "QEMU 7.2.22");
  EXPECT_TRUE(schema.has_command("blockdev-mirror"));
  EXPECT_FALSE(schema.has_command("BLOCK_JOB_READY"));  // an event, not a command
}

}  // namespace
}  // namespace vmshift::testing
