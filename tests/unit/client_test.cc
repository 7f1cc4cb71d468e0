#include "qmp/client.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <future>
#include <set>
#include <thread>

#include "base/log.h"
#include "qmp/commands.h"
#include "qmp/trace.h"
#include "support/fake_qmp_peer.h"
#include "support/temp_dir.h"

namespace vmshift::qmp {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using vmshift::testing::FakeQmpPeer;

Deadline in_ms(int ms) { return Deadline::after(std::chrono::milliseconds(ms)); }
Deadline soon() { return Deadline::after(std::chrono::seconds(10)); }

void negotiate(FakeQmpPeer& peer) { peer.expect("qmp_capabilities").reply("{}"); }

// Runs f and returns the Error it throws (fails the test if it throws none).
template <typename F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an error";
  return Error(ErrorCode::kInternal, "no error");
}

// Test that connecting reads the greeting, records version and capabilities,
// negotiates, and moves the session through its states.
TEST(Client, NegotiatesAndRecordsGreeting) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}").with_args("null");
  peer.start();
  Client client;
  EXPECT_EQ(client.state(), State::kDisconnected);
  client.connect(peer.socket_path(), soon());
  EXPECT_EQ(client.state(), State::kReady);
  Greeting g = client.greeting();
  EXPECT_EQ(g.version.major, 7);
  EXPECT_EQ(g.version.minor, 2);
  EXPECT_EQ(g.version.micro, 22);
  EXPECT_EQ(g.version.to_string(), "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)");
  EXPECT_EQ(g.capabilities, std::vector<std::string>{"oob"});
  client.close();
  EXPECT_EQ(client.state(), State::kClosed);
}

// Test that execute returns the "return" value and sends arguments as given.
TEST(Client, ExecuteReturnsResult) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-status").reply(R"({"status":"running","singlestep":false,"running":true})");
  peer.expect("block-job-set-speed").with_args(R"({"device":"job0","speed":1048576})").reply("{}");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  RunStatus s = query_status(client, soon());
  EXPECT_EQ(s.status, "running");
  EXPECT_TRUE(s.running);
  block_job_set_speed(client, "job0", 1 << 20, soon());
}

// Test that every command carries a distinct id.
TEST(Client, SendsADistinctIdWithEveryCommand) {
  // A peer that echoes each command's id back as the return value.
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd ours(fds[0]), theirs(fds[1]);
  std::thread server([&] {
    std::string greeting = FakeQmpPeer::qemu72_greeting();
    ASSERT_GT(::write(theirs.get(), greeting.data(), greeting.size()), 0);
    std::string buf;
    char c;
    while (::read(theirs.get(), &c, 1) == 1) {
      if (c != '\n') {
        buf += c;
        continue;
      }
      Json cmd = Json::parse(buf);
      buf.clear();
      Json reply = Json::object().set("return", cmd.get("id")).set("id", cmd.get("id"));
      std::string out = reply.dump() + "\n";
      ASSERT_GT(::write(theirs.get(), out.data(), out.size()), 0);
    }
  });
  {
    Client client;
    client.attach(std::move(ours), soon());  // over an already-connected fd
    std::set<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.insert(client.execute("query-version", soon()).as_string());
    EXPECT_EQ(ids.size(), 20u);
  }
  server.join();
}

// Test that an error reply becomes a CommandError with class, desc and command.
TEST(Client, ErrorReplyIsTyped) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("blockdev-add").error("GenericError", "Could not open '/x.qcow2': No such file");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  try {
    blockdev_add(client, image_node({.node_name = "t", .filename = "/x.qcow2"}), soon());
    FAIL() << "no error";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCommandFailed);
    EXPECT_EQ(e.command(), "blockdev-add");
    EXPECT_EQ(e.error_class(), "GenericError");
    EXPECT_EQ(e.desc(), "Could not open '/x.qcow2': No such file");
    EXPECT_STREQ(e.what(),
                 "QEMU command 'blockdev-add' failed: Could not open '/x.qcow2': No such file");
  }
  EXPECT_EQ(client.state(), State::kReady);  // an error reply does not end the session
}

// Test that events arriving before and during a command are queued, not lost.
TEST(Client, EventsInterleavedWithRepliesAreQueued) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.event("RESUME");
  peer.expect("query-block-jobs").reply("[]");
  // Events written before the reply to the next command.
  peer.expect("block-job-complete").no_reply();
  peer.event("BLOCK_JOB_READY",
             R"({"device":"j1","len":10,"offset":10,"speed":0,"type":"mirror"})");
  peer.event("JOB_STATUS_CHANGE", R"({"id":"j1","status":"waiting"})");
  peer.send("{\"return\": {}, \"id\": \"vmshift-3\"}\r\n");
  peer.event("BLOCK_JOB_COMPLETED",
             R"({"device":"j1","len":10,"offset":10,"speed":0,"type":"mirror"})");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_TRUE(query_block_jobs(client, soon()).empty());
  block_job_complete(client, "j1", soon());
  Event done = client.wait_for_event("BLOCK_JOB_COMPLETED", soon());
  EXPECT_EQ(done.data.get_string("device"), "j1");
  Event ready = client.wait_for_event("BLOCK_JOB_READY", soon());  // arrived earlier, still there
  EXPECT_EQ(ready.data.get_int("len"), 10);
  EXPECT_LT(ready.sequence, done.sequence);
  std::vector<Event> rest = client.take_events();
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].name, "RESUME");
  EXPECT_EQ(rest[1].name, "JOB_STATUS_CHANGE");
  EXPECT_EQ(rest[1].seconds, 1700000000);
  EXPECT_TRUE(client.take_events().empty());
  EXPECT_EQ(client.events_received(), 4u);
}

// Test that wait_for_event skips events the predicate rejects and leaves them queued.
TEST(Client, WaitForEventWithPredicate) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.event("JOB_STATUS_CHANGE", R"({"id":"other","status":"ready"})");
  peer.event("JOB_STATUS_CHANGE", R"({"id":"mine","status":"running"})");
  peer.event("JOB_STATUS_CHANGE", R"({"id":"mine","status":"ready"})");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  Event e = client.wait_for_event(
      "JOB_STATUS_CHANGE",
      [](const Event& ev) {
        return ev.data.get_string("id") == "mine" && ev.data.get_string("status") == "ready";
      },
      soon());
  EXPECT_EQ(e.data.get_string("status"), "ready");
  EXPECT_EQ(client.take_events().size(), 2u);
}

// Test that waiting for an event that never comes ends at the deadline.
TEST(Client, WaitForEventTimesOut) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.event("STOP");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  auto start = std::chrono::steady_clock::now();
  Error e = error_of([&] { client.wait_for_event("SHUTDOWN", in_ms(200)); });
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_STREQ(e.what(), "QEMU sent no SHUTDOWN event within 200 ms");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_EQ(client.wait_for_event("STOP", soon()).name, "STOP");
}

// Test that a reply with an unknown id is dropped and the session goes on.
TEST(Client, ReplyWithUnknownIdIsDropped) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-status").reply_with_wrong_id(R"({"status":"paused","running":false})");
  peer.send("{\"return\": {\"status\": \"running\", \"running\": true}}\r\n");  // no id at all
  peer.send("{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 7}\r\n");
  peer.send(
      "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": \"vmshift-2\"}\r\n");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_EQ(query_status(client, soon()).status, "running");
  EXPECT_EQ(client.state(), State::kReady);
}

// Test that a reply sent in 1-byte pieces is reassembled.
TEST(Client, ReplyInOneBytePieces) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-status").reply(R"({"status":"postmigrate","running":false})").in_pieces(1);
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_EQ(query_status(client, soon()).status, "postmigrate");
}

// Test that a greeting, reply and event arriving in one write are all handled.
TEST(Client, SeveralMessagesInOneWrite) {
  FakeQmpPeer peer(/*greeting=*/false);
  peer.send(FakeQmpPeer::qemu72_greeting() + "{\"event\":\"RESUME\",\"data\":{}}\r\n");
  peer.expect("qmp_capabilities").no_reply();
  peer.send("{\"return\":{},\"id\":\"vmshift-1\"}\r\n{\"event\":\"STOP\"}\r\n");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_EQ(client.state(), State::kReady);
  EXPECT_EQ(client.wait_for_event("STOP", soon()).data.size(), 0u);
  EXPECT_EQ(client.wait_for_event("RESUME", soon()).name, "RESUME");
}

// Test that a reply of several MiB (larger than any read buffer) arrives whole.
TEST(Client, HugeReply) {
  FakeQmpPeer peer;
  negotiate(peer);
  std::string big = "\"" + std::string(8u << 20, 'q') + "\"";
  peer.expect("human-monitor-command").reply(big);
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_EQ(human_monitor_command(client, "info mtree", soon()).size(), 8u << 20);
}

// Test that a message over the configured limit ends the session with a protocol error.
TEST(Client, MessageOverLimitIsAProtocolError) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("human-monitor-command").reply("\"" + std::string(100000, 'q') + "\"");
  peer.start();
  Client client({.max_message_bytes = 4096});
  client.connect(peer.socket_path(), soon());
  Error e = error_of([&] { human_monitor_command(client, "x", soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_THAT(e.what(), HasSubstr("larger than 4096 bytes"));
  EXPECT_EQ(client.state(), State::kClosed);
}

// Test that malformed JSON ends the session with a clear protocol error, failing the call.
TEST(Client, MalformedJsonIsAProtocolError) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-status").no_reply();
  peer.send("{\"return\": {\"status\": \x01 garbage\r\n");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  Error e = error_of([&] { query_status(client, soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_THAT(e.what(), HasSubstr("QEMU command 'query-status' got no reply: QMP peer sent "
                                  "invalid data: malformed JSON"));
  EXPECT_EQ(client.state(), State::kClosed);
  Error later = error_of([&] { query_status(client, soon()); });
  EXPECT_EQ(later.code(), ErrorCode::kProtocol);
}

// Test that a JSON value that is not an object is refused.
TEST(Client, NonObjectMessageIsAProtocolError) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-status").no_reply();
  peer.send("[1,2,3]\r\n");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  Error e = error_of([&] { query_status(client, soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_THAT(e.what(), HasSubstr("JSON array where an object was expected"));
}

// Test that a reply of the wrong shape fails the typed helper with the command named.
TEST(Client, ReplyOfWrongShapeNamesCommand) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-status").reply(R"({"status":"running"})");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  Error e = error_of([&] { query_status(client, soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_STREQ(e.what(), "unexpected reply to QEMU command 'query-status': missing key 'running'");
  EXPECT_EQ(client.state(), State::kReady);
}

// Test that a hang-up in the middle of a reply fails the pending call at once.
TEST(Client, HangUpMidReply) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-block").no_reply();
  peer.send("{\"return\": [{\"device\": \"ide0");
  peer.hang_up();
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  auto start = std::chrono::steady_clock::now();
  Error e = error_of([&] { query_block(client, soon()); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(e.code(), ErrorCode::kConnection);
  EXPECT_THAT(e.what(), HasSubstr("QMP peer hung up in the middle of a message (28 bytes"));
  EXPECT_EQ(client.state(), State::kClosed);
}

// Test that a hang-up fails every pending call at once, from several threads.
TEST(Client, HangUpFailsEveryPendingCall) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-status").no_reply();
  peer.expect("query-block").no_reply();
  peer.hang_up();
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  auto first = std::async(std::launch::async,
                          [&] { return error_of([&] { query_status(client, soon()); }); });
  // Make the order of the two commands deterministic for the script.
  while (peer.received_commands().size() < 2) std::this_thread::yield();
  auto second = std::async(std::launch::async,
                           [&] { return error_of([&] { query_block(client, soon()); }); });
  auto waiter = std::async(std::launch::async, [&] {
    return error_of([&] { client.wait_for_event("SHUTDOWN", soon()); });
  });
  EXPECT_EQ(first.get().code(), ErrorCode::kConnection);
  EXPECT_EQ(second.get().code(), ErrorCode::kConnection);
  EXPECT_EQ(waiter.get().code(), ErrorCode::kConnection);
}

// Test that a peer closing with our command unread (ECONNRESET) is reported
// as a hang-up, like a clean close.
TEST(Client, ConnectionResetIsAHangUp) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd ours(fds[0]), theirs(fds[1]);
  std::string greeting = FakeQmpPeer::qemu72_greeting();
  ASSERT_GT(::write(theirs.get(), greeting.data(), greeting.size()), 0);
  Client client;
  // Negotiation cannot finish: the peer never answers; it closes once our
  // qmp_capabilities sits unread in its socket.
  std::thread closer([&] {
    pollfd p{theirs.get(), POLLIN, 0};
    ::poll(&p, 1, 10000);
    theirs.reset();
  });
  Error e = error_of([&] { client.attach(std::move(ours), soon()); });
  closer.join();
  EXPECT_EQ(e.code(), ErrorCode::kConnection);
  EXPECT_THAT(e.what(), HasSubstr("QMP peer hung up"));
}

// Test that an event received before a hang-up can still be taken afterwards.
TEST(Client, EventsSurviveHangUp) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.event("SHUTDOWN", R"({"guest":false,"reason":"host-qmp-quit"})");
  peer.hang_up();
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  Event e = client.wait_for_event("SHUTDOWN", soon());
  EXPECT_EQ(e.data.get_string("reason"), "host-qmp-quit");
}

// Test that a command without reply times out, says it was sent, and a late
// reply is then dropped without disturbing the next command.
TEST(Client, DeadlineExpiryAndLateReply) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("stop").no_reply();
  peer.expect("cont").no_reply();
  peer.send("{\"return\": {}, \"id\": \"vmshift-2\"}\r\n");  // late reply to "stop"
  peer.send("{\"return\": {}, \"id\": \"vmshift-3\"}\r\n");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  Error e = error_of([&] { stop(client, in_ms(100)); });
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_STREQ(e.what(),
               "QEMU did not answer command 'stop' within 100 ms (the command was sent; QEMU may "
               "still carry it out)");
  EXPECT_EQ(client.state(), State::kReady);
  cont(client, soon());
}

// Test that a peer that never greets makes connect() fail at its deadline.
TEST(Client, NoGreetingTimesOut) {
  FakeQmpPeer peer(/*greeting=*/false);
  peer.start();
  Client client;
  Error e = error_of([&] { client.connect(peer.socket_path(), in_ms(200)); });
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_THAT(e.what(), HasSubstr("sent no greeting within"));
  EXPECT_EQ(client.state(), State::kClosed);
}

// Test that a refused qmp_capabilities fails connect() with QEMU's reason.
TEST(Client, RefusedNegotiation) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities")
      .error("CommandNotFound", "Capabilities negotiation is already complete");
  peer.start();
  Client client;
  Error e = error_of([&] { client.connect(peer.socket_path(), soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kCommandFailed);
  EXPECT_EQ(client.state(), State::kClosed);
}

// Test that a greeting of the wrong shape is a protocol error.
TEST(Client, MalformedGreeting) {
  FakeQmpPeer peer(/*greeting=*/false);
  peer.send("{\"QMP\": {\"version\": {}}}\r\n");
  peer.start();
  Client client;
  Error e = error_of([&] { client.connect(peer.socket_path(), soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_THAT(e.what(), HasSubstr("QMP greeting is malformed: missing key 'qemu'"));
}

// Test that commands are refused before connecting and after closing.
TEST(Client, StateGuards) {
  Client client;
  Error before = error_of([&] { client.execute("query-status", soon()); });
  EXPECT_EQ(before.code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(before.what(), HasSubstr("is not connected"));
  client.close();
  Error after = error_of([&] { client.execute("query-status", soon()); });
  EXPECT_EQ(after.code(), ErrorCode::kConnection);
  EXPECT_THAT(after.what(), HasSubstr("the QMP session was closed"));
  Error reconnect = error_of([&] { client.connect("/tmp/x.sock", soon()); });
  EXPECT_EQ(reconnect.code(), ErrorCode::kFailedPrecondition);
}

// Test that arguments that are not an object are refused before sending.
TEST(Client, ArgumentsMustBeAnObject) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  Error e = error_of([&] { client.execute("cont", Json::array(), soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
}

// Test that close() from another thread fails a pending call at once.
TEST(Client, CloseFailsPendingCall) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("query-migrate").no_reply();
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  auto pending = std::async(std::launch::async,
                            [&] { return error_of([&] { query_migrate(client, soon()); }); });
  while (peer.received_commands().size() < 2) std::this_thread::yield();
  client.close();
  Error e = pending.get();
  EXPECT_EQ(e.code(), ErrorCode::kConnection);
  EXPECT_THAT(e.what(), HasSubstr("the QMP session was closed"));
}

// Test that a socket path too long for sockaddr_un is refused with its length.
TEST(Client, SocketPathTooLong) {
  Client client;
  Error e = error_of([&] { client.connect("/tmp/" + std::string(200, 'p'), soon()); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(e.what(), HasSubstr("is 205 bytes; a UNIX socket path must be 1 to 107 bytes"));
}

// Test that a socket that never appears fails at the deadline with the reason.
TEST(Client, SocketThatNeverAppears) {
  Client client;
  Error e = error_of([&] { client.connect("/tmp/vmshift-no-such.sock", in_ms(100)); });
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
}

// Test that the event queue is bounded: the oldest events go and are counted.
TEST(Client, EventQueueIsBounded) {
  FakeQmpPeer peer;
  negotiate(peer);
  for (int i = 0; i < 5; ++i)
    peer.event("RTC_CHANGE",
               fmt::format(R"({{"offset":{},"qom-path":"/machine/unattached/device[0]"}})", i));
  peer.event("STOP");
  peer.start();
  Client client({.max_queued_events = 3});
  client.connect(peer.socket_path(), soon());
  client.wait_for_event("STOP", soon());
  std::vector<Event> rest = client.take_events();
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].data.get_int("offset"), 3);
  EXPECT_EQ(client.events_dropped(), 3u);
}

// Test that options that would make the session unusable are refused.
TEST(Client, RefusesUnusableOptions) {
  EXPECT_EQ(error_of([] { Client c({.max_queued_events = 0}); }).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of([] { Client c({.max_message_bytes = 0}); }).code(),
            ErrorCode::kInvalidArgument);
}

// Test that close() from several threads at once is safe and idempotent.
TEST(Client, ConcurrentClose) {
  for (int round = 0; round < 20; ++round) {
    FakeQmpPeer peer;
    negotiate(peer);
    peer.start();
    Client client;
    client.connect(peer.socket_path(), soon());
    std::vector<std::thread> closers;
    for (int i = 0; i < 4; ++i) closers.emplace_back([&] { client.close(); });
    for (auto& t : closers) t.join();
    EXPECT_EQ(client.state(), State::kClosed);
  }
}

// Test that a server whose backlog is full (it accepts nobody) makes
// connect() fail at its deadline instead of blocking.
TEST(Client, FullBacklogTimesOut) {
  testing::TempDir dir;
  std::string path = dir.file("busy.sock");
  UniqueFd server(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(server.get(), 0), 0);
  std::vector<UniqueFd> queued;  // fill the backlog
  for (int i = 0; i < 64; ++i) {
    UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) break;
    queued.push_back(std::move(c));
  }
  auto start = std::chrono::steady_clock::now();
  Client client;
  Error e = error_of([&] { client.connect(path, in_ms(300)); });
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_THAT(e.what(), HasSubstr("is another client holding the QMP socket?"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

// What the log (stderr) receives while f runs at this log level.
template <typename F>
std::string log_of(log::Level level, F&& f) {
  const log::Level before = log::level();
  log::set_level(level);
  ::testing::internal::CaptureStderr();
  f();
  std::string out = ::testing::internal::GetCapturedStderr();
  log::set_level(before);
  return out;
}

// Test that every command is traced at debug level with its name, its
// arguments in their units and its duration, and every event with its data.
TEST(Client, TracesCommandsAndEventsAtDebugLevel) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("block-job-set-speed").with_args(R"({"device":"job0","speed":16777216})").reply("{}");
  peer.event("BLOCK_JOB_READY",
             R"({"type":"mirror","device":"job0","len":8388608,"offset":8388608,"speed":0})");
  peer.expect("block-job-complete")
      .with_args(R"({"device":"job0"})")
      .error("GenericError", "The active block job 'job0' cannot be completed");
  peer.start();
  std::string trace = log_of(log::Level::kDebug, [&] {
    Client client(ClientOptions{.name = "vm1"});
    client.connect(peer.socket_path(), soon());
    block_job_set_speed(client, "job0", 16 << 20, soon());
    client.wait_for_event("BLOCK_JOB_READY", soon());
    EXPECT_THROW(block_job_complete(client, "job0", soon()), CommandError);
  });
  EXPECT_THAT(trace, HasSubstr("vmshift debug [qmp]: vm1: block-job-set-speed device=job0 "
                               "speed=16777216 B/s (16 MiB/s)\n"));
  EXPECT_THAT(trace, ContainsRegex("vm1: block-job-set-speed returned in [0-9]+\\.[0-9] ms\n"));
  EXPECT_THAT(trace, HasSubstr("vm1: event BLOCK_JOB_READY type=mirror device=job0 "
                               "len=8388608 B (8 MiB) offset=8388608 B (8 MiB) speed=0 B/s\n"));
  EXPECT_THAT(trace, ContainsRegex("vm1: block-job-complete failed in [0-9]+\\.[0-9] ms: "
                                   "GenericError: The active block job 'job0' cannot be "
                                   "completed\n"));
  EXPECT_THAT(trace, ContainsRegex("vm1: qmp_capabilities returned in [0-9]+\\.[0-9] ms\n"));
}

// Test that nothing is traced above debug level.
TEST(Client, TracesNothingAboveDebugLevel) {
  FakeQmpPeer peer;
  negotiate(peer);
  peer.expect("stop").reply("{}");
  peer.start();
  EXPECT_EQ(log_of(log::Level::kInfo,
                   [&] {
                     Client client(ClientOptions{.name = "vm1"});
                     client.connect(peer.socket_path(), soon());
                     stop(client, soon());
                   }),
            "");
}

// Test how arguments are written for the trace: nested members with dotted
// keys, units on sizes, speeds and times, strings quoted where they need it.
TEST(Client, DescribesArgumentsWithUnits) {
  EXPECT_EQ(describe_members(image_node({.node_name = "dst0", .filename = "/i/a b.qcow2"})),
            R"(driver=qcow2 node-name=dst0 file.driver=file file.filename="/i/a b.qcow2")");
  EXPECT_EQ(describe_members(to_arguments(MigrationParameters{.max_bandwidth = 125000000,
                                                              .downtime_limit = 300,
                                                              .xbzrle_cache_size = 1536,
                                                              .cpu_throttle_initial = 20})),
            "max-bandwidth=125000000 B/s (119.2 MiB/s) downtime-limit=300 ms "
            "xbzrle-cache-size=1536 B (1.5 KiB) cpu-throttle-initial=20 %");
  EXPECT_EQ(describe_members(Json::parse(R"({"granularity":512,"backing":null,"flat":true,)"
                                         R"("list":[1,2],"empty":{}})")),
            "granularity=512 B backing=null flat=true list=[1,2] empty={}");
  EXPECT_EQ(describe_members(Json()), "");
  EXPECT_EQ(describe_members(Json::parse(R"({"command-line":"info block"})"), 12),
            "command-line... (25 bytes)");
  EXPECT_EQ(unit_of("speed"), "B/s");
  EXPECT_EQ(unit_of("device"), "");
}

}  // namespace
}  // namespace vmshift::qmp
