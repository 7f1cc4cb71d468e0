// Tests of the test tool itself: the fake peer must catch what it claims to.
#include "support/fake_qmp_peer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "qmp/client.h"

namespace vmshift::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

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
                              qmp::Json::object().set("device", qmp::Json::string("job1")), soon()),
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

}  // namespace
}  // namespace vmshift::testing
