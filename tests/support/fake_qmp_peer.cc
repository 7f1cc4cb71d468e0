#include "support/fake_qmp_peer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <stdexcept>

#include "base/error.h"

namespace vmshift::testing {
namespace {

// How long the peer waits for the client at any one step.
constexpr int kStepTimeoutMs = 30000;

Json parse_or_die(const std::string& text, const std::string& what) {
  try {
    return Json::parse(text);
  } catch (const Error& e) {
    throw std::invalid_argument(
        fmt::format("fake QMP peer: {} is not valid JSON: {}", what, e.what()));
  }
}

// What QEMU's qmp-dispatch.c rejects in a command's envelope before it looks
// at the command: members other than execute, arguments and id (exec-oob
// needs the oob capability, which the client does not enable), and
// arguments that are not an object.
std::vector<std::string> envelope_problems(const Json& cmd) {
  std::vector<std::string> problems;
  for (const std::string& key : cmd.keys())
    if (key != "execute" && key != "arguments" && key != "id")
      problems.push_back(fmt::format("QMP input member '{}' is unexpected", key));
  if (auto args = cmd.find("arguments"); args && !args->is_object())
    problems.push_back("QMP input member 'arguments' must be an object");
  return problems;
}

}  // namespace

FakeQmpPeer::Step& FakeQmpPeer::Step::reply(std::string return_json) {
  parse_or_die(return_json, "reply");
  reply_kind = Reply::kReturn;
  payload = std::move(return_json);
  return *this;
}

FakeQmpPeer::Step& FakeQmpPeer::Step::error(std::string error_class, std::string description) {
  reply_kind = Reply::kError;
  payload = std::move(error_class);
  desc = std::move(description);
  return *this;
}

FakeQmpPeer::Step& FakeQmpPeer::Step::no_reply() {
  reply_kind = Reply::kNone;
  return *this;
}

FakeQmpPeer::Step& FakeQmpPeer::Step::reply_with_wrong_id(std::string return_json) {
  parse_or_die(return_json, "reply");
  reply_kind = Reply::kWrongId;
  payload = std::move(return_json);
  return *this;
}

FakeQmpPeer::Step& FakeQmpPeer::Step::with_args(const std::string& args_json) {
  args = parse_or_die(args_json, "expected arguments");
  return *this;
}

FakeQmpPeer::Step& FakeQmpPeer::Step::in_pieces(std::size_t bytes) {
  piece = bytes;
  return *this;
}

std::string FakeQmpPeer::qemu72_greeting() {
  return R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, )"
         R"("package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}})"
         "\r\n";
}

FakeQmpPeer::FakeQmpPeer(bool greeting) : schema_(QapiSchema::recorded()), dir_("fakeqmp") {
  socket_path_ = dir_.file("qmp.sock");
  listen_fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size());
  if (!listen_fd_ ||
      ::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_.get(), 1) != 0)
    throw std::runtime_error("fake QMP peer: cannot listen on " + socket_path_);
  stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (greeting) send(qemu72_greeting()).label = "greeting";
}

FakeQmpPeer::~FakeQmpPeer() {
  if (thread_.joinable()) {
    verify();
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_.get(), &one, sizeof one);
    thread_.join();
  }
}

FakeQmpPeer::Step& FakeQmpPeer::expect(std::string command) {
  Step s;
  s.kind = Step::Kind::kExpect;
  s.label = fmt::format("expect command '{}'", command);
  s.command = std::move(command);
  s.payload = "{}";
  steps_.push_back(std::move(s));
  return steps_.back();
}

FakeQmpPeer::Step& FakeQmpPeer::event(const std::string& name, const std::string& data_json) {
  Json ev = Json::object().set("event", Json::string(name));
  if (!data_json.empty()) ev.set("data", parse_or_die(data_json, "event data"));
  ev.set("timestamp", Json::object()
                          .set("seconds", Json::integer(1700000000))
                          .set("microseconds", Json::integer(static_cast<int>(steps_.size()))));
  Step& s = send(ev.dump() + "\r\n");
  s.label = fmt::format("event {}", name);
  s.event = name;
  s.event_data = ev.find("data").value_or(Json());
  return s;
}

FakeQmpPeer::Step& FakeQmpPeer::send(std::string raw_bytes) {
  Step s;
  s.kind = Step::Kind::kSend;
  s.label = "send raw bytes";
  s.payload = std::move(raw_bytes);
  steps_.push_back(std::move(s));
  return steps_.back();
}

void FakeQmpPeer::hang_up() {
  Step s;
  s.kind = Step::Kind::kHangUp;
  s.label = "hang up";
  steps_.push_back(std::move(s));
}

void FakeQmpPeer::load_transcript(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("fake QMP peer: cannot read transcript " + path);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::string where = fmt::format("{}:{}", path, lineno);
    if (line.rfind("-> ", 0) == 0) {
      Json cmd = parse_or_die(line.substr(3), where);
      Step& s = expect(cmd.get_string("execute"));
      s.args = cmd.find("arguments").value_or(Json());
      s.reply_kind = Step::Reply::kNone;
    } else if (line.rfind("<- ", 0) == 0) {
      Json msg = parse_or_die(line.substr(3), where);
      bool is_reply = msg.has("return") || msg.has("error");
      if (is_reply) {
        // Rebuilt without its id: it is sent with the id of the command it answers.
        Json copy = Json::object();
        for (const auto& key : msg.keys())
          if (key != "id") copy.set(key, msg.get(key));
        msg = copy;
      }
      Step& s = send(is_reply ? msg.dump() : msg.dump() + "\r\n");
      s.with_last_id = is_reply;
      s.label = fmt::format("transcript line {}", lineno);
      if (auto name = msg.find_string("event")) {
        s.event = *name;
        s.event_data = msg.find("data").value_or(Json());
      }
    } else {
      throw std::runtime_error(
          fmt::format("fake QMP peer: {}: lines start with '-> ' or '<- '", where));
    }
  }
}

void FakeQmpPeer::check_script_against_schema() {
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& step = steps_[i];
    if (!step.event.empty()) {
      if (std::vector<std::string> problems = schema_.check_event(step.event, step.event_data);
          !problems.empty())
        add_failure(fmt::format("scripted step {} ({}): {} never sends it: {}", i, step.label,
                                schema_.qemu_name(), fmt::join(problems, "; ")));
      continue;
    }
    if (step.kind != Step::Kind::kExpect) continue;
    // Where only the command is scripted, its arguments are checked when they arrive.
    std::vector<std::string> problems;
    if (step.args || !schema_.has_command(step.command))
      problems = schema_.check_arguments(step.command, step.args.value_or(Json()));
    if (!problems.empty())
      add_failure(fmt::format("scripted step {} ({}): {} would reject it: {}", i, step.label,
                              schema_.qemu_name(), fmt::join(problems, "; ")));
  }
}

void FakeQmpPeer::start() {
  check_script_against_schema();
  thread_ = std::thread([this] { run(); });
}

void FakeQmpPeer::add_failure(std::string message) {
  std::lock_guard lock(mu_);
  failures_.push_back(std::move(message));
}

bool FakeQmpPeer::send_all(int fd, const std::string& bytes, std::size_t piece) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    std::size_t n = piece == 0 ? bytes.size() - off : std::min(piece, bytes.size() - off);
    ssize_t w = ::send(fd, bytes.data() + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      // The client is not reading: wait for room, or for the peer to stop.
      pollfd fds[2] = {{fd, POLLOUT, 0}, {stop_fd_.get(), POLLIN, 0}};
      int r = ::poll(fds, 2, kStepTimeoutMs);
      if (r == 0) add_failure("fake QMP peer: client stopped reading");
      if (r <= 0 || (fds[1].revents & POLLIN)) return false;
      continue;
    }
    off += static_cast<std::size_t>(w);
    // Slow bytes: a pause between pieces so the client sees separate reads.
    if (piece != 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return true;
}

std::optional<std::string> FakeQmpPeer::read_line(int fd, int timeout_ms) {
  for (;;) {
    auto nl = inbuf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = inbuf_.substr(0, nl);
      inbuf_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    int r = ::poll(fds, 2, timeout_ms);
    if (r == 0) {
      add_failure(fmt::format("fake QMP peer: client sent nothing for {} ms", timeout_ms));
      return std::nullopt;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN)) return std::nullopt;
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return std::nullopt;  // client closed
    inbuf_.append(buf, static_cast<std::size_t>(n));
  }
}

void FakeQmpPeer::run() {
  UniqueFd conn;
  {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    int r = ::poll(fds, 2, kStepTimeoutMs);
    if (r > 0 && (fds[0].revents & POLLIN))
      conn = UniqueFd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (r == 0) add_failure("fake QMP peer: no client connected");
      std::lock_guard lock(mu_);
      script_over_ = true;
      cv_.notify_all();
      return;
    }
  }

  bool open = true;
  Json last_id;  // id of the last command received
  for (std::size_t i = 0; i < steps_.size() && open; ++i) {
    const Step& step = steps_[i];
    bool done = true;
    switch (step.kind) {
      case Step::Kind::kSend:
        if (step.with_last_id) {
          Json reply = Json::parse(step.payload);
          if (!last_id.is_null()) reply.set("id", last_id);
          done = send_all(conn.get(), reply.dump() + "\r\n", step.piece);
        } else {
          done = send_all(conn.get(), step.payload, step.piece);
        }
        break;
      case Step::Kind::kHangUp:
        conn.reset();
        open = false;
        break;
      case Step::Kind::kExpect: {
        auto line = read_line(conn.get(), kStepTimeoutMs);
        if (!line) {
          done = false;
          open = false;
          break;
        }
        Json cmd;
        std::string got;
        try {
          cmd = Json::parse(*line);
          got = cmd.get_string("execute");
        } catch (const Error& e) {
          add_failure(
              fmt::format("fake QMP peer: step {} ({}): client sent an invalid command "
                          "'{}': {}",
                          i, step.label, *line, e.what()));
          done = false;
          break;
        }
        {
          std::lock_guard lock(mu_);
          received_.push_back(got);
        }
        Json id = cmd.find("id").value_or(Json());
        last_id = id;
        auto reply_error = [&](const std::string& cls, const std::string& desc) {
          Json r = Json::object().set(
              "error",
              Json::object().set("class", Json::string(cls)).set("desc", Json::string(desc)));
          if (!id.is_null()) r.set("id", id);
          return send_all(conn.get(), r.dump() + "\r\n", step.piece);
        };
        std::vector<std::string> problems = envelope_problems(cmd);
        if (problems.empty())
          problems = schema_.check_arguments(got, cmd.find("arguments").value_or(Json()));
        if (!problems.empty()) {
          std::string msg = fmt::format("{} would reject command '{}' from the client: {}",
                                        schema_.qemu_name(), got, fmt::join(problems, "; "));
          add_failure(msg);
          reply_error(schema_.has_command(got) ? "GenericError" : "CommandNotFound",
                      "fake QMP peer: " + msg);
          done = false;
          break;
        }
        if (got != step.command) {
          std::string msg = fmt::format("expected command '{}' got '{}'", step.command, got);
          add_failure(msg);
          reply_error("GenericError", "fake QMP peer: " + msg);
          done = false;
          break;
        }
        if (step.args) {
          Json actual = cmd.find("arguments").value_or(Json());
          if (!(actual == *step.args)) {
            std::string msg = fmt::format("command '{}': expected arguments {} got {}",
                                          step.command, step.args->dump(), actual.dump());
            add_failure(msg);
            reply_error("GenericError", "fake QMP peer: " + msg);
            done = false;
            break;
          }
        }
        switch (step.reply_kind) {
          case Step::Reply::kNone:
            break;
          case Step::Reply::kError:
            done = reply_error(step.payload, step.desc);
            break;
          case Step::Reply::kReturn:
          case Step::Reply::kWrongId: {
            Json r = Json::object().set("return", Json::parse(step.payload));
            if (step.reply_kind == Step::Reply::kWrongId)
              r.set("id", Json::string("not-a-pending-id"));
            else if (!id.is_null())
              r.set("id", id);
            done = send_all(conn.get(), r.dump() + "\r\n", step.piece);
            break;
          }
        }
        break;
      }
    }
    std::lock_guard lock(mu_);
    if (done) next_step_ = i + 1;
    if (!done) break;
  }
  {
    std::lock_guard lock(mu_);
    script_over_ = true;
    cv_.notify_all();
  }
  // After the script: stay connected; anything the client sends is unexpected.
  while (conn) {
    auto line = read_line(conn.get(), /*timeout_ms=*/-1);  // until the client or the test ends
    if (!line) break;
    std::string got = *line;
    try {
      got = Json::parse(*line).get_string("execute");
    } catch (const Error&) {
    }
    add_failure(fmt::format("unexpected command '{}' after the end of the script", got));
  }
}

void FakeQmpPeer::wait_for_script(std::chrono::milliseconds limit) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, limit, [&] { return script_over_; });
}

std::vector<std::string> FakeQmpPeer::take_failures() {
  wait_for_script(std::chrono::seconds(5));
  std::lock_guard lock(mu_);
  std::vector<std::string> out = std::move(failures_);
  failures_.clear();
  for (std::size_t i = next_step_; i < steps_.size(); ++i)
    out.push_back(fmt::format("scripted step {} ({}) was never reached", i, steps_[i].label));
  verified_ = true;
  return out;
}

void FakeQmpPeer::verify() {
  {
    std::lock_guard lock(mu_);
    if (verified_) {
      for (const auto& f : failures_) ADD_FAILURE() << f;
      failures_.clear();
      return;
    }
  }
  for (const auto& f : take_failures()) ADD_FAILURE() << f;
}

std::vector<std::string> FakeQmpPeer::received_commands() const {
  std::lock_guard lock(mu_);
  return received_;
}

}  // namespace vmshift::testing
