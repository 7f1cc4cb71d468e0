#include "qmp/client.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "base/log.h"
#include "qmp/socket.h"
#include "qmp/trace.h"

namespace vmshift::qmp {
namespace {

constexpr std::size_t kLogPreview = 2000;

std::string preview(std::string_view line) { return qmp::preview(line, kLogPreview); }

long long ms(std::chrono::milliseconds d) { return static_cast<long long>(d.count()); }

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// A peer that dies (or closes) with data it did not read resets the
// connection: that is a hang-up too, and is reported as one.
std::string io_error(const char* op, int err) {
  if (err == ECONNRESET || err == EPIPE) return "QMP peer hung up (connection reset)";
  return fmt::format("cannot {} QMP peer: {}", op, std::strerror(err));
}

}  // namespace

std::string_view to_string(State state) noexcept {
  switch (state) {
    case State::kDisconnected:
      return "disconnected";
    case State::kNegotiating:
      return "negotiating";
    case State::kReady:
      return "ready";
    case State::kClosed:
      return "closed";
  }
  return "?";
}

CommandError::CommandError(std::string command, std::string error_class, std::string desc)
    : Error(ErrorCode::kCommandFailed, fmt::format("QEMU command '{}' failed: {}", command, desc)),
      command_(std::move(command)),
      class_(std::move(error_class)),
      desc_(std::move(desc)) {}

struct Client::Impl {
  struct Pending {
    std::string command;
    std::optional<Json> response;
    bool sent = false;  // handed to the I/O thread for writing
  };

  explicit Impl(ClientOptions o) : options(std::move(o)), reader(options.max_message_bytes) {}

  ClientOptions options;

  mutable std::mutex mu;
  std::condition_variable cv;
  State state = State::kDisconnected;
  std::optional<Greeting> greeting;
  std::optional<Error> failure;  // why the session closed
  std::map<std::string, std::shared_ptr<Pending>, std::less<>> pending;
  std::deque<std::pair<std::string, std::string>> outbox;  // (id, line) not yet written
  std::deque<Event> events;
  std::uint64_t events_received = 0;
  std::uint64_t events_dropped = 0;
  std::uint64_t next_id = 0;
  bool stopping = false;

  // Owned by the I/O thread once it runs; it closes fd when it ends.
  UniqueFd fd;
  UniqueFd wake_fd;  // lives as long as the Impl: wake() may run at any time
  LineReader reader;
  std::string writing;
  std::size_t written = 0;
  std::thread io;

  void start(UniqueFd socket);
  void wake();
  void io_loop();
  void run_io();
  bool write_some();
  bool read_some();
  void dispatch(const std::string& line);
  void on_greeting(Greeting g);
  void on_event(Event ev);
  void on_reply(const std::optional<std::string>& id, Json body, std::string_view line);
  void fail(ErrorCode code, const std::string& message);
  void fail_locked(ErrorCode code, const std::string& message);
  void shutdown();
  void negotiate(Deadline deadline);
  Json execute(std::string_view command, const Json* arguments, Deadline deadline,
               bool during_negotiation);
  Json run_command(std::string_view command, const Json* arguments, Deadline deadline,
                   bool during_negotiation);
  [[noreturn]] void throw_closed_locked(std::string_view context) const;
};

void Client::Impl::start(UniqueFd socket) {
  std::lock_guard lock(mu);
  if (state != State::kDisconnected)
    throw Error(
        ErrorCode::kFailedPrecondition,
        fmt::format("QMP session {} cannot connect: it is {}", options.name, to_string(state)));
  fd = prepare_fd(std::move(socket));
  wake_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd) throw_errno(ErrorCode::kIo, errno, "eventfd");
  state = State::kNegotiating;
  io = std::thread([this] { io_loop(); });
}

void Client::Impl::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd.get(), &one, sizeof one);
}

void Client::Impl::fail_locked(ErrorCode code, const std::string& message) {
  if (state == State::kClosed) return;
  log::debug("qmp", "{}: session closed: {}", options.name, message);
  state = State::kClosed;
  failure = Error(code, message);
  outbox.clear();
  cv.notify_all();
}

void Client::Impl::fail(ErrorCode code, const std::string& message) {
  std::lock_guard lock(mu);
  fail_locked(code, message);
}

void Client::Impl::throw_closed_locked(std::string_view context) const {
  if (state == State::kDisconnected)
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("{}: QMP session {} is not connected", context, options.name));
  const Error& why = *failure;
  throw Error(why.code(), fmt::format("{}: {}", context, why.what()));
}

// The I/O thread. It blocks in poll() without a deadline of its own: it ends
// when the peer hangs up or when shutdown() wakes it through wake_fd.
void Client::Impl::io_loop() {
  run_io();
  fd.reset();
}

void Client::Impl::run_io() {
  for (;;) {
    bool want_write;
    {
      std::lock_guard lock(mu);
      if (stopping || state == State::kClosed) return;
      if (writing.size() == written && !outbox.empty()) {
        auto& [id, line] = outbox.front();
        if (auto it = pending.find(id); it != pending.end()) it->second->sent = true;
        writing = std::move(line);
        written = 0;
        outbox.pop_front();
      }
      want_write = written < writing.size();
    }
    pollfd fds[2] = {
        {fd.get(), static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0},
        {wake_fd.get(), POLLIN, 0},
    };
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail(ErrorCode::kIo, fmt::format("poll on QMP socket failed: {}", std::strerror(errno)));
      return;
    }
    if (fds[1].revents & POLLIN) {
      std::uint64_t count;
      [[maybe_unused]] auto n = ::read(wake_fd.get(), &count, sizeof count);
    }
    if ((fds[0].revents & POLLOUT) && !write_some()) return;
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !read_some()) return;
  }
}

bool Client::Impl::write_some() {
  while (written < writing.size()) {
    ssize_t n = ::send(fd.get(), writing.data() + written, writing.size() - written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      fail(ErrorCode::kConnection, io_error("write to", errno));
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  return true;
}

bool Client::Impl::read_some() {
  char buf[65536];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return true;
    fail(ErrorCode::kConnection, io_error("read from", errno));
    return false;
  }
  if (n == 0) {
    std::size_t partial = reader.pending_bytes();
    fail(ErrorCode::kConnection,
         partial > 0 ? fmt::format("QMP peer hung up in the middle of a message ({} bytes "
                                   "received)",
                                   partial)
                     : std::string("QMP peer hung up"));
    return false;
  }
  try {
    reader.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    while (auto line = reader.next()) {
      dispatch(*line);
      std::lock_guard lock(mu);
      if (state == State::kClosed) return false;
    }
  } catch (const Error& e) {
    fail(ErrorCode::kProtocol, e.what());
    return false;
  }
  return true;
}

void Client::Impl::dispatch(const std::string& line) {
  log::debug("qmp", "{} <- {}", options.name, preview(line));
  Message m = parse_message(line);
  switch (m.kind) {
    case Message::Kind::kGreeting:
      on_greeting(std::move(m.greeting));
      break;
    case Message::Kind::kEvent:
      on_event(std::move(m.event));
      break;
    case Message::Kind::kReply:
      on_reply(m.id, std::move(m.body), line);
      break;
    case Message::Kind::kUnknown:
      log::debug("qmp", "{}: ignoring a message of unknown kind", options.name);
      break;
  }
}

void Client::Impl::on_greeting(Greeting g) {
  std::lock_guard lock(mu);
  if (state != State::kNegotiating || greeting)
    throw Error(ErrorCode::kProtocol, "QMP peer sent a second greeting");
  greeting = std::move(g);
  cv.notify_all();
}

void Client::Impl::on_event(Event ev) {
  if (log::enabled(log::Level::kDebug))
    log::debug("qmp", "{}: event {}", options.name, describe_event(ev));
  std::lock_guard lock(mu);
  ev.sequence = ++events_received;
  if (!events.empty() && events.size() >= options.max_queued_events) {
    log::warn("qmp", "{}: event queue full ({} events): dropping the oldest, {}", options.name,
              events.size(), events.front().name);
    events.pop_front();
    ++events_dropped;
  }
  events.push_back(std::move(ev));
  cv.notify_all();
}

void Client::Impl::on_reply(const std::optional<std::string>& id, Json body,
                            std::string_view line) {
  std::lock_guard lock(mu);
  auto it = id ? pending.find(*id) : pending.end();
  if (it == pending.end()) {
    // QMP spec: a reply nobody waits for is dropped.
    log::debug("qmp", "{}: dropping a reply with unknown id: {}", options.name, preview(line));
    return;
  }
  it->second->response = std::move(body);
  pending.erase(it);
  cv.notify_all();
}

// Traces the command at debug level: its name and arguments (with units)
// when it starts, its outcome and duration when it ends, so that a slow or
// failing QEMU is visible from the log alone.
Json Client::Impl::execute(std::string_view command, const Json* arguments, Deadline deadline,
                           bool during_negotiation) {
  if (arguments != nullptr && !arguments->is_null() && !arguments->is_object())
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("arguments of QMP command '{}' must be a JSON object, not {}", command,
                            to_string(arguments->type())));
  if (!log::enabled(log::Level::kDebug))
    return run_command(command, arguments, deadline, during_negotiation);
  std::string members = arguments != nullptr ? describe_members(*arguments) : "";
  log::debug("qmp", "{}: {}{}{}", options.name, command, members.empty() ? "" : " ", members);
  const auto started = std::chrono::steady_clock::now();
  try {
    Json ret = run_command(command, arguments, deadline, during_negotiation);
    log::debug("qmp", "{}: {} returned in {:.1f} ms", options.name, command, ms_since(started));
    return ret;
  } catch (const CommandError& e) {
    log::debug("qmp", "{}: {} failed in {:.1f} ms: {}: {}", options.name, command,
               ms_since(started), e.error_class(), e.desc());
    throw;
  } catch (const Error& e) {
    log::debug("qmp", "{}: {} failed after {:.1f} ms: {}", options.name, command, ms_since(started),
               e.what());
    throw;
  }
}

Json Client::Impl::run_command(std::string_view command, const Json* arguments, Deadline deadline,
                               bool during_negotiation) {
  const auto budget = deadline.remaining();
  auto slot = std::make_shared<Pending>();
  slot->command = std::string(command);
  std::string id;
  {
    std::lock_guard lock(mu);
    bool allowed = state == State::kReady || (during_negotiation && state == State::kNegotiating);
    if (!allowed) {
      if (state == State::kClosed || state == State::kDisconnected)
        throw_closed_locked(fmt::format("cannot run QEMU command '{}'", command));
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("cannot run QEMU command '{}': QMP session {} is {}", command,
                              options.name, to_string(state)));
    }
    id = fmt::format("vmshift-{}", ++next_id);
    Json msg = Json::object().set("execute", Json::string(command));
    if (arguments != nullptr && !arguments->is_null()) msg.set("arguments", *arguments);
    msg.set("id", Json::string(id));
    std::string line = msg.dump();
    log::debug("qmp", "{} -> {}", options.name, preview(line));
    line += "\r\n";
    pending.emplace(id, slot);
    outbox.emplace_back(id, std::move(line));
  }
  wake();

  std::optional<Json> response;
  {
    std::unique_lock lock(mu);
    cv.wait_until(lock, deadline.time_point(),
                  [&] { return slot->response.has_value() || state == State::kClosed; });
    if (slot->response) {
      response = std::move(slot->response);
    } else {
      pending.erase(id);
      if (state == State::kClosed)
        throw_closed_locked(fmt::format("QEMU command '{}' got no reply", command));
      bool sent = slot->sent;
      if (!sent) std::erase_if(outbox, [&](const auto& entry) { return entry.first == id; });
      throw Error(ErrorCode::kTimeout,
                  sent ? fmt::format("QEMU did not answer command '{}' within {} ms (the command "
                                     "was sent; QEMU may still carry it out)",
                                     command, ms(budget))
                       : fmt::format("QEMU command '{}' could not be sent within {} ms (it was "
                                     "not sent)",
                                     command, ms(budget)));
    }
  }

  if (auto ret = response->find("return")) return *ret;
  try {
    Json err = response->get("error");
    throw CommandError(std::string(command), err.find_string("class").value_or("GenericError"),
                       err.get_string("desc"));
  } catch (const CommandError&) {
    throw;
  } catch (const Error& e) {
    throw Error(ErrorCode::kProtocol,
                fmt::format("QEMU's error reply to '{}' is malformed: {}", command, e.what()));
  }
}

void Client::Impl::negotiate(Deadline deadline) {
  const auto budget = deadline.remaining();
  {
    std::unique_lock lock(mu);
    cv.wait_until(lock, deadline.time_point(),
                  [&] { return greeting.has_value() || state == State::kClosed; });
    if (state == State::kClosed) throw_closed_locked("QMP negotiation failed");
    if (!greeting)
      throw Error(ErrorCode::kTimeout, fmt::format("QMP peer {} sent no greeting within {} ms",
                                                   options.name, ms(budget)));
  }
  execute("qmp_capabilities", nullptr, deadline, /*during_negotiation=*/true);
  std::lock_guard lock(mu);
  // Negotiation succeeded. If the peer hung up right after its reply, the
  // session stays closed: its events can still be taken, and the next
  // command fails with the reason.
  if (state != State::kNegotiating) return;
  state = State::kReady;
  log::debug("qmp", "{}: ready, QEMU {}", options.name, greeting->version.to_string());
}

void Client::Impl::shutdown() {
  // Only the first of several concurrent callers gets the thread to join;
  // the I/O thread closes the socket itself when it ends.
  std::thread thread;
  {
    std::lock_guard lock(mu);
    stopping = true;
    fail_locked(ErrorCode::kConnection, "the QMP session was closed");
    thread = std::move(io);
  }
  if (thread.joinable()) {
    wake();
    thread.join();
  }
}

Client::Client(ClientOptions options) {
  if (options.max_queued_events == 0)
    throw Error(ErrorCode::kInvalidArgument, "a QMP session must queue at least one event");
  if (options.max_message_bytes == 0)
    throw Error(ErrorCode::kInvalidArgument, "a QMP message limit of 0 bytes allows no message");
  impl_ = std::make_unique<Impl>(std::move(options));
}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}
Client::~Client() { close(); }

void Client::connect(const std::string& socket_path, Deadline deadline) {
  if (state() != State::kDisconnected)
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("QMP session cannot connect to '{}': it is {}", socket_path,
                            to_string(state())));
  if (impl_->options.name == "qmp") impl_->options.name = socket_path;
  attach(connect_unix(socket_path, deadline), deadline);
}

void Client::attach(UniqueFd fd, Deadline deadline) {
  impl_->start(std::move(fd));
  try {
    impl_->negotiate(deadline);
  } catch (...) {
    impl_->shutdown();
    throw;
  }
}

State Client::state() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state;
}

Greeting Client::greeting() const {
  std::lock_guard lock(impl_->mu);
  if (!impl_->greeting)
    throw Error(ErrorCode::kFailedPrecondition, "QMP session has not received a greeting");
  return *impl_->greeting;
}

Json Client::execute(std::string_view command, Deadline deadline) {
  return impl_->execute(command, nullptr, deadline, false);
}

Json Client::execute(std::string_view command, const Json& arguments, Deadline deadline) {
  return impl_->execute(command, &arguments, deadline, false);
}

Event Client::wait_for_event(std::string_view name, Deadline deadline) {
  return wait_for_event(name, EventMatcher(), deadline);
}

Event Client::wait_for_event(std::string_view name, const EventMatcher& match, Deadline deadline) {
  const auto budget = deadline.remaining();
  std::unique_lock lock(impl_->mu);
  auto& q = impl_->events;
  auto take = [&]() -> std::optional<Event> {
    for (auto it = q.begin(); it != q.end(); ++it) {
      if (it->name == name && (!match || match(*it))) {
        Event ev = std::move(*it);
        q.erase(it);
        return ev;
      }
    }
    return std::nullopt;
  };
  for (;;) {
    if (auto ev = take()) return std::move(*ev);
    if (impl_->state == State::kClosed || impl_->state == State::kDisconnected)
      impl_->throw_closed_locked(fmt::format("waiting for QEMU event {}", name));
    if (impl_->cv.wait_until(lock, deadline.time_point()) == std::cv_status::timeout &&
        deadline.expired()) {
      if (auto ev = take()) return std::move(*ev);  // arrived with the wake-up
      throw Error(ErrorCode::kTimeout,
                  fmt::format("QEMU sent no {} event within {} ms", name, ms(budget)));
    }
  }
}

std::vector<Event> Client::take_events() {
  std::lock_guard lock(impl_->mu);
  std::vector<Event> out(std::make_move_iterator(impl_->events.begin()),
                         std::make_move_iterator(impl_->events.end()));
  impl_->events.clear();
  return out;
}

std::uint64_t Client::events_received() const {
  std::lock_guard lock(impl_->mu);
  return impl_->events_received;
}

std::uint64_t Client::events_dropped() const {
  std::lock_guard lock(impl_->mu);
  return impl_->events_dropped;
}

void Client::close() {
  if (impl_) impl_->shutdown();
}

}  // namespace vmshift::qmp
