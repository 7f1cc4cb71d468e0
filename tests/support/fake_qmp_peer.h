// A scripted QMP server for unit tests, modelled on libvirt's
// tests/qemumonitortestutils.c.
//
// The peer listens on a UNIX socket in a temporary directory, accepts one
// connection and follows its script step by step:
//
//   FakeQmpPeer peer;                        // first step: QEMU 7.2's greeting
//   peer.expect("qmp_capabilities").reply("{}");
//   peer.expect("query-status").reply(R"({"status":"running","running":true})");
//   peer.event("STOP");
//   peer.start();
//
// A command other than the one expected is a test failure "expected command
// 'X' got 'Y'"; so are arguments that differ, a scripted step that was never
// reached, and a command after the end of the script. Failures are reported
// (ADD_FAILURE) by verify(), which the destructor calls.
//
// Every command the client sends, every scripted expectation and every
// scripted event (name and data) is checked against the QAPI schema recorded from QEMU 7.2 (the
// QEMU of the greeting; tests/data/qmp, scripts/dev/record-qapi-schema), as libvirt's test monitor
// does: a command, an argument or an envelope member (other than execute,
// arguments, id) the real QEMU would reject fails the test with a message
// naming the command and the member, and the client gets the error QEMU
// would send. A script can therefore not prove code against
// commands that QEMU does not have.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/json.h"
#include "base/unique_fd.h"
#include "support/qapi_schema.h"
#include "support/temp_dir.h"

namespace vmshift::testing {

class FakeQmpPeer {
 public:
  struct Step {
    enum class Kind { kSend, kExpect, kHangUp };
    enum class Reply { kReturn, kError, kNone, kWrongId };

    Kind kind = Kind::kSend;
    std::string command;       // kExpect
    std::optional<Json> args;  // kExpect: checked when set (null = no arguments)
    Reply reply_kind = Reply::kReturn;
    std::string payload;        // kSend: raw bytes; kExpect: return value or error class
    std::string desc;           // kExpect + kError
    std::size_t piece = 0;      // send in pieces of this many bytes (0 = at once)
    bool with_last_id = false;  // kSend: a recorded reply; gets the last command's id
    std::string label;          // for messages
    std::string event;          // kSend of an event: its name, checked against the schema
    Json event_data;            // and its data (null = none)

    // Fluent setters for expect() steps.
    Step& reply(std::string return_json);
    Step& error(std::string error_class, std::string description);
    Step& no_reply();
    Step& reply_with_wrong_id(std::string return_json);
    Step& with_args(const std::string& args_json);
    Step& in_pieces(std::size_t bytes);
  };

  // greeting=false leaves the greeting out of the script (to test its absence).
  explicit FakeQmpPeer(bool greeting = true);
  ~FakeQmpPeer();
  FakeQmpPeer(const FakeQmpPeer&) = delete;
  FakeQmpPeer& operator=(const FakeQmpPeer&) = delete;

  static std::string qemu72_greeting();

  Step& expect(std::string command);
  Step& event(const std::string& name, const std::string& data_json = "");
  Step& send(std::string raw_bytes);  // sent verbatim (add "\n" yourself)
  void hang_up();

  // Appends the steps of a recorded transcript: lines "-> {json}" are
  // commands the client must send (matched on "execute" and "arguments"),
  // lines "<- {json}" are what QEMU sent back (a reply's "id" is replaced by
  // the id of the command it answers, and keeps its place among the events).
  // A transcript starts with QEMU's greeting: construct the peer with
  // greeting=false. Blank lines and '#' comments are skipped.
  void load_transcript(const std::string& path);

  // Checks the scripted expectations against the schema, then serves.
  void start();
  std::string socket_path() const { return socket_path_; }

  // Waits (bounded) for the script to finish, then reports every failure
  // with ADD_FAILURE. Idempotent.
  void verify();
  // Waits (bounded) for the script to finish and returns the failures
  // without reporting them, for tests of the peer itself.
  std::vector<std::string> take_failures();
  // Commands the peer received, in order.
  std::vector<std::string> received_commands() const;

 private:
  void run();
  bool send_all(int fd, const std::string& bytes, std::size_t piece);
  std::optional<std::string> read_line(int fd, int timeout_ms);
  void add_failure(std::string message);
  void wait_for_script(std::chrono::milliseconds limit);
  void check_script_against_schema();

  const QapiSchema& schema_;
  TempDir dir_;
  std::string socket_path_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;
  std::deque<Step> steps_;
  std::thread thread_;
  std::string inbuf_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t next_step_ = 0;
  bool script_over_ = false;  // all steps ran, or the script was abandoned
  bool verified_ = false;
  std::vector<std::string> failures_;
  std::vector<std::string> received_;
};

}  // namespace vmshift::testing
