#include "cli/job_commands.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/format.h"
#include "base/json.h"
#include "base/log.h"
#include "base/poll_until.h"
#include "base/subprocess.h"
#include "base/unique_fd.h"
#include "cli/command.h"
#include "cli/progress.h"
#include "cli/table.h"
#include "core/preflight.h"
#include "core/runner.h"
#include "hosts/libvirt.h"
#include "migrate/live_storage.h"

namespace vmshift::cli {

using core::Job;
using core::JobState;

namespace {

std::int64_t ms_since_epoch(core::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string local_time(core::TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&tt, &tm);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", tm);
}

std::string progress_text(const Job& j) {
  if (j.bytes_total <= 0) return "-";
  double pct = 100.0 * static_cast<double>(j.bytes_done) / static_cast<double>(j.bytes_total);
  return fmt::format("{:.0f}% of {}", std::min(pct, 100.0),
                     human_bytes(static_cast<std::uint64_t>(j.bytes_total)));
}

// What the planner predicted for a migration job (total ms, pause ms).
std::optional<std::pair<std::int64_t, std::int64_t>> predicted(const Job& j) {
  try {
    Json params = Json::parse(j.params);
    std::optional<Json> plan = params.find("plan");
    if (!plan) return std::nullopt;
    auto total = plan->find_int("predicted_total_ms");
    auto pause = plan->find_int("predicted_pause_ms");
    // A QSM predicts its pause again once it has measured the overlays' growth.
    if (!j.state_data.empty()) {
      if (auto again = Json::parse(j.state_data).find_int("predicted_pause_ms");
          again && *again > 0)
        pause = again;
    }
    if (!total || !pause || *total <= 0) return std::nullopt;
    return std::make_pair(*total, *pause);
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::optional<std::int64_t> measured_ms(const Job& j) {
  if (!j.started || !j.ended) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(*j.ended - *j.started).count();
}

Json job_json(const Job& j) {
  Json steps = Json::array();
  for (const auto& s : j.steps)
    steps.push(Json::object()
                   .set("name", Json::string(s.name))
                   .set("state", Json::string(core::to_string(s.state)))
                   .set("detail", Json::string(s.detail)));
  Json o = Json::object()
               .set("id", Json::integer(j.id))
               .set("vm", Json::string(j.vm))
               .set("vm_uuid", Json::string(j.vm_uuid))
               .set("type", Json::string(j.type))
               .set("source_host", Json::string(j.source_host))
               .set("dest_host", Json::string(j.dest_host))
               .set("state", Json::string(core::to_string(j.state)))
               .set("bytes_total", Json::integer(j.bytes_total))
               .set("bytes_done", Json::integer(j.bytes_done))
               .set("rate", Json::number(j.rate))
               .set("created_ms", Json::integer(ms_since_epoch(j.created)))
               .set("cancel_requested", Json::boolean(j.cancel_requested))
               .set("steps", steps)
               .set("error", Json::string(j.error))
               .set("result", Json::string(j.result));
  if (j.pause_ms) o.set("pause_ms", Json::integer(*j.pause_ms));
  if (j.eta_seconds) o.set("eta", Json::number(*j.eta_seconds));
  if (j.started) o.set("started_ms", Json::integer(ms_since_epoch(*j.started)));
  if (j.ended) o.set("ended_ms", Json::integer(ms_since_epoch(*j.ended)));
  if (j.lease) o.set("pid", Json::integer(j.lease->pid));
  if (auto p = predicted(j))
    o.set("predicted_total_ms", Json::integer(p->first))
        .set("predicted_pause_ms", Json::integer(p->second));
  if (auto m = measured_ms(j)) o.set("total_ms", Json::integer(*m));
  return o;
}

int exit_code(JobState s) { return s == JobState::kCompleted ? 0 : 1; }

}  // namespace

int jobs_list(core::JobStore& store, bool json, int limit) {
  std::vector<Job> jobs = store.list(limit);
  if (json) {
    Json all = Json::array();
    for (const auto& j : jobs) all.push(job_json(j));
    fmt::print("{}\n", all.dump());
    return 0;
  }
  Table t({"ID", "STATE", "TYPE", "VM", "HOST", "PROGRESS", "PAUSE", "CREATED"});
  for (const auto& j : jobs) {
    std::string host =
        j.source_host == j.dest_host ? j.source_host : j.source_host + " -> " + j.dest_host;
    std::string state = std::string(core::to_string(j.state));
    if (j.state == JobState::kRunning && j.cancel_requested) state += " (cancel requested)";
    t.add({std::to_string(j.id), state, j.type, j.vm, host, progress_text(j),
           j.pause_ms ? fmt::format("{} ms", *j.pause_ms) : "-", local_time(j.created)});
  }
  if (t.empty())
    fmt::print("no jobs\n");
  else
    fmt::print("{}", t.render());
  return 0;
}

int jobs_show(core::JobStore& store, std::int64_t id, bool json) {
  Job j = store.get(id);
  if (json) {
    fmt::print("{}\n", job_json(j).dump());
    return 0;
  }
  fmt::print("job {}: {} of {} on {}{}\n", j.id, j.type, j.vm, j.source_host,
             j.dest_host != j.source_host ? " -> " + j.dest_host : "");
  fmt::print("state:    {}{}\n", core::to_string(j.state),
             j.cancel_requested && !core::is_terminal(j.state) ? " (cancel requested)" : "");
  fmt::print("created:  {}\n", local_time(j.created));
  if (j.started) fmt::print("started:  {}\n", local_time(*j.started));
  if (j.ended) fmt::print("ended:    {}\n", local_time(*j.ended));
  fmt::print("progress: {} ({}/s)\n", progress_text(j),
             human_bytes(static_cast<std::uint64_t>(j.rate)));
  if (j.pause_ms) fmt::print("pause:    {} ms\n", *j.pause_ms);
  if (auto p = predicted(j)) {
    std::optional<std::int64_t> took = measured_ms(j);
    fmt::print("predicted: {:.1f} s in all, pause {} ms; measured: {}, pause {}\n",
               static_cast<double>(p->first) / 1000, p->second,
               took && j.state == JobState::kCompleted
                   ? fmt::format("{:.1f} s in all", static_cast<double>(*took) / 1000)
                   : "-",
               j.pause_ms ? fmt::format("{} ms", *j.pause_ms) : "-");
  }
  if (j.lease && !core::is_terminal(j.state)) fmt::print("process:  {}\n", j.lease->pid);
  fmt::print("steps:\n");
  for (const auto& s : j.steps)
    fmt::print("  {:<8} {:<8} {}\n", s.name, core::to_string(s.state), s.detail);
  if (!j.result.empty()) fmt::print("result:   {}\n", j.result);
  if (!j.error.empty()) fmt::print("error:    {}\n", j.error);
  return 0;
}

int jobs_cancel(core::JobStore& store, std::int64_t id) {
  Job before = store.get(id);
  if (!store.request_cancel(id)) {
    fmt::print("job {} is {}: nothing to cancel\n", id, core::to_string(before.state));
    return 1;
  }
  Job after = store.get(id);
  if (after.state == JobState::kCancelled)
    fmt::print("job {} cancelled before it started; nothing was changed\n", id);
  else
    fmt::print("job {}: cancel requested; its process is undoing it (vmshift jobs wait {})\n", id,
               id);
  return 0;
}

int jobs_wait(core::JobStore& store, std::int64_t id, int timeout_s, bool json) {
  Deadline deadline = Deadline::after(std::chrono::seconds(timeout_s));
  Job j;
  if (!poll_until(deadline, std::chrono::milliseconds(250), [&] {
        j = store.get(id);
        return core::is_terminal(j.state);
      })) {
    fmt::print(stderr, "vmshift: job {} is still {} after {} s\n", id, core::to_string(j.state),
               timeout_s);
    return 2;
  }
  if (json)
    fmt::print("{}\n", job_json(j).dump());
  else
    fmt::print("job {} {}: {}\n", id, core::to_string(j.state),
               j.state == JobState::kCompleted ? j.result : j.error);
  return exit_code(j.state);
}

int jobs_run(const std::string& store_path, std::int64_t id, const hosts::Inventory& inv, bool json,
             int queue_timeout_s, const std::atomic<bool>* interrupted) {
  ProgressDisplay display(choose_display(json), id);
  core::JobOutcome o =
      core::run_job(store_path, id, inv, display,
                    Deadline::after(std::chrono::seconds(queue_timeout_s)), interrupted);
  // The outcome is shown even when the job store cannot be read now (the
  // job's own message then says so).
  std::optional<std::int64_t> pause_ms;
  try {
    pause_ms = core::JobStore::open(store_path).get(id).pause_ms;
  } catch (const Error&) {
  }
  display.finished(o, pause_ms);
  return exit_code(o.state);
}

namespace {

// Set by SIGHUP while a command follows its job: the terminal is gone.
std::atomic<bool> hung_up{false};
void on_hangup(int) { hung_up.store(true); }

// Starts `vmshift jobs run ID` for a created job in a session of its own
// (no controlling terminal; stdin /dev/null, stdout and stderr appended to
// the job's log), so that nothing that happens to this command's terminal
// reaches the job. Returns once that process has claimed the job (it waits
// for a slot or runs it): until then this process is the job's waiter, and
// must live so that the job does not look orphaned.
Process spawn_job_process(core::JobStore& store, const std::string& store_path, std::int64_t id,
                          const hosts::Inventory& inv, int queue_timeout_s,
                          const std::filesystem::path& log) {
  Argv argv = {"/proc/self/exe"};
  if (!inv.source().empty() && inv.source().front() == '/')
    argv.insert(argv.end(), {"--config", inv.source()});
  argv.insert(argv.end(), {"jobs", "run", std::to_string(id), "--json", "--queue-timeout",
                           std::to_string(queue_timeout_s)});
  SpawnOptions so;
  so.stdout_file = log.string();
  so.stderr_file = log.string();
  so.new_session = true;
  // The job log always keeps the trace of every libvirt call; commands
  // that relay the log show it only with --debug.
  so.extra_env.push_back("VMSHIFT_DEBUG=1");
  so.extra_env.push_back("VMSHIFT_STATE_DIR=" +
                         std::filesystem::path(store_path).parent_path().string());
  Process p = spawn(argv, so);
  Deadline claim = Deadline::after(std::chrono::seconds(30));
  poll_until(claim, std::chrono::milliseconds(20), [&] {
    return store.get(id).state != JobState::kQueued ||
           store.waiter(id) == std::optional<std::int64_t>(p.pid()) || !p.running();
  });
  return p;
}

// The lines a job process appends to its log from an offset on: its --json
// events, and whatever else it prints (warnings, a last error).
class LogTail {
 public:
  LogTail(const std::filesystem::path& path, std::uintmax_t from)
      : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_) ::lseek(fd_.get(), static_cast<off_t>(from), SEEK_SET);
  }
  std::vector<std::string> lines() {
    std::vector<std::string> out;
    if (!fd_) return out;
    char buf[8192];
    for (;;) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      partial_.append(buf, static_cast<std::size_t>(n));
    }
    for (std::size_t nl; (nl = partial_.find('\n')) != std::string::npos;) {
      out.push_back(partial_.substr(0, nl));
      partial_.erase(0, nl + 1);
    }
    return out;
  }

 private:
  UniqueFd fd_;
  std::string partial_;
};

// Shows what a job process reported through this command's display, as if
// the job ran here: --json events are passed on as they are; for the bar
// (or quiet) display they are shown again. Other lines go to stderr.
class Relay {
 public:
  Relay(Display mode, std::int64_t id) : mode_(mode), display_(mode, id) {}
  void line(const std::string& text) {
    std::optional<Json> event;
    if (!text.empty() && text.front() == '{') {
      try {
        Json j = Json::parse(text);
        if (j.find_string("event")) event = std::move(j);
      } catch (const Error&) {
      }
    }
    if (!event && text.starts_with("vmshift debug [") && !log::enabled(log::Level::kDebug)) return;
    try {
      if (event) return show(*event, text);
    } catch (const Error&) {
      // An event this command cannot read is shown as it is.
    }
    fmt::print(stderr, "{}\n", text);
  }
  bool finished() const { return finished_; }

 private:
  void show(const Json& event, const std::string& text) {
    std::string kind = event.get_string("event");
    if (kind == "finished") {
      finished_ = true;
    }
    if (mode_ == Display::kJson) {
      fmt::print("{}\n", text);
      std::fflush(stdout);
      return;
    }
    if (kind == "started") {
      Job j;
      j.type = event.get_string("type");
      j.vm = event.get_string("vm");
      display_.started(j);
    } else if (kind == "queued") {
      display_.waiting(event.get_string("why"));
    } else if (kind == "step") {
      display_.step(
          event.get_string("step"),
          core::step_state_from(event.get_string("state")).value_or(core::StepState::kRunning),
          event.get_string("detail"));
    } else if (kind == "progress") {
      std::optional<double> eta;
      if (event.has("eta")) eta = event.get_number("eta");
      display_.progress(event.get_string("phase"), event.get_int("done"), event.get_int("total"),
                        event.get_number("rate"), eta);
    } else if (kind == "note") {
      display_.note(event.get_string("message"));
    } else if (kind == "stats") {
      display_.detail(event);
    } else if (kind == "finished") {
      core::JobOutcome o{
          core::job_state_from(event.get_string("state")).value_or(JobState::kFailed),
          event.get_string("message")};
      display_.finished(o, event.find_int("pause_ms"));
    }
  }

  Display mode_;
  ProgressDisplay display_;
  bool finished_ = false;
};

bool output_broken() { return std::ferror(stdout) != 0 || std::ferror(stderr) != 0; }

// The foreground command of a job: shows the job process's progress until
// the job ends and exits with that process's code. SIGINT/SIGTERM ask the
// job to cancel (it undoes what it did; this command waits for that);
// SIGHUP, or output that cannot be written any more (a closed terminal or
// pipe), ends this command while the job goes on.
int follow_job(core::JobStore& store, std::int64_t id, Process& p, const std::filesystem::path& log,
               std::uintmax_t log_from, bool json, const std::atomic<bool>* interrupted) {
  Relay relay(choose_display(json), id);
  LogTail tail(log, log_from);
  bool cancel_asked = false;
  auto detach = [&] {
    pid_t pid = p.release();
    std::clearerr(stderr);
    try {
      fmt::print(stderr,
                 "vmshift: this command stopped showing job {}; the job goes on in process {} "
                 "(log: {}); follow it with: vmshift jobs wait {}\n",
                 id, pid, log.string(), id);
    } catch (const std::exception&) {
    }
    return 2;
  };
  for (;;) {
    std::optional<ExitStatus> st = p.wait(Deadline::after(std::chrono::milliseconds(100)));
    try {
      for (const auto& l : tail.lines()) relay.line(l);
    } catch (const std::system_error&) {
      return detach();
    }
    if (st) {
      if (st->signal == 0) return st->code;
      if (relay.finished()) return 1;
      fmt::print(stderr,
                 "vmshift: the process running job {} (pid {}) {} before the job ended; the next "
                 "vmshift command finishes or undoes it (vmshift jobs show {})\n",
                 id, p.pid(), st->describe(), id);
      return 1;
    }
    if (hung_up.load() || output_broken()) return detach();
    if (interrupted != nullptr && interrupted->load() && !cancel_asked) {
      cancel_asked = true;
      try {
        store.request_cancel(id);
      } catch (const Error&) {
        // The store cannot be written now: the job process's own handler
        // cancels it from memory.
        p.signal(SIGTERM);
      }
    }
  }
}

}  // namespace

int start_job(const std::string& store_path, std::int64_t id, const hosts::Inventory& inv,
              bool json, bool detach, int queue_timeout_s, const std::atomic<bool>* interrupted) {
  core::JobStore store = core::JobStore::open(store_path);
  std::filesystem::path log =
      std::filesystem::path(store_path).parent_path() / fmt::format("job-{}.log", id);
  if (!detach) {
    // From here on a hang-up must not end the job: SIGHUP and a broken
    // output only end this command.
    struct sigaction sa {};
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
  }
  std::error_code ec;
  std::uintmax_t log_from = std::filesystem::file_size(log, ec);
  if (ec) log_from = 0;
  Process p = spawn_job_process(store, store_path, id, inv, queue_timeout_s, log);
  if (!p.running() && !core::is_terminal(store.get(id).state) && detach)
    throw Error(
        ErrorCode::kCommandFailed,
        fmt::format("the background process for job {} exited at once; see {}", id, log.string()));
  if (!detach) {
    try {
      return follow_job(store, id, p, log, log_from, json, interrupted);
    } catch (...) {
      // Whatever fails here, the job must not end with this command.
      p.release();
      throw;
    }
  }
  // The background process now owns the job: it must outlive us.
  p.release();
  if (json)
    fmt::print(
        "{}\n",
        Json::object().set("job", Json::integer(id)).set("detached", Json::boolean(true)).dump());
  else
    fmt::print("job {} runs in the background (log: {}); follow it with: vmshift jobs wait {}\n",
               id, log.string(), id);
  return 0;
}

int jobs_resume(const std::string& store_path, std::int64_t id, const hosts::Inventory& inv,
                bool json, bool detach, const std::atomic<bool>* interrupted) {
  {
    core::JobStore store = core::JobStore::open(store_path);
    core::Job j = store.get(id);
    if (!core::resumable(j.type))
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("job {} is a {} job, which cannot be resumed (only copies and "
                              "network migrations continue where they stopped)",
                              id, j.type));
    if (!store.reopen(id))
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("job {} is {}: only a failed job can be resumed", id,
                              core::to_string(j.state)));
  }
  return start_job(store_path, id, inv, json, detach, 3600, interrupted);
}

namespace {

struct JobArgs {
  bool json = false;
  int limit = 50;
  std::int64_t id = 0;
  int wait_timeout = 86400;
  bool resume_detach = false;
  int run_queue_timeout = 86400;
};

}  // namespace

void register_job_commands(CLI::App& app, Registry& registry) {
  auto a = std::make_shared<JobArgs>();
  auto* jobs_cmd = app.add_subcommand("jobs", "List jobs (newest first), or act on one");
  jobs_cmd->add_flag("--json", a->json, "JSON instead of a table");
  jobs_cmd->add_option("--limit", a->limit, "How many jobs to list")->capture_default_str();
  registry.on(jobs_cmd, [a](Session& s) { return jobs_list(s.jobs(), a->json, a->limit); });

  auto* show_cmd = jobs_cmd->add_subcommand("show", "Show a job: state, steps, progress, result");
  show_cmd->add_option("ID", a->id)->required();
  show_cmd->add_flag("--json", a->json);
  registry.on(show_cmd, [a](Session& s) { return jobs_show(s.jobs(), a->id, a->json); });

  auto* cancel_cmd = jobs_cmd->add_subcommand("cancel", "Cancel a queued or running job");
  cancel_cmd->add_option("ID", a->id)->required();
  registry.on(cancel_cmd, [a](Session& s) { return jobs_cancel(s.jobs(), a->id); });

  auto* wait_cmd = jobs_cmd->add_subcommand("wait", "Wait until a job ends; exit 0 if completed");
  wait_cmd->add_option("ID", a->id)->required();
  wait_cmd->add_option("--timeout", a->wait_timeout, "Seconds to wait")->capture_default_str();
  wait_cmd->add_flag("--json", a->json);
  registry.on(wait_cmd,
              [a](Session& s) { return jobs_wait(s.jobs(), a->id, a->wait_timeout, a->json); });

  auto* resume_cmd = jobs_cmd->add_subcommand("resume", "Continue a failed copy where it stopped");
  resume_cmd->add_option("ID", a->id)->required();
  resume_cmd->add_flag("--detach", a->resume_detach, "Run in the background");
  resume_cmd->add_flag("--json", a->json);
  registry.on(resume_cmd, [a](Session& s) {
    s.jobs();
    return jobs_resume(s.store_path(), a->id, s.inventory(), a->json, a->resume_detach,
                       s.interrupted());
  });

  auto* run_cmd = jobs_cmd->add_subcommand("run", "Run a queued job in this process");
  run_cmd->group("");  // internal: what --detach starts
  run_cmd->add_option("ID", a->id)->required();
  run_cmd->add_flag("--json", a->json);
  run_cmd->add_option("--queue-timeout", a->run_queue_timeout);
  registry.on(run_cmd, [a](Session& s) {
    s.jobs();
    // The job process has no terminal to lose: a stray SIGHUP must not stop
    // a move half-way. (Commands that follow a job catch it themselves.)
    signal(SIGHUP, SIG_IGN);
    return jobs_run(s.store_path(), a->id, s.inventory(), a->json, a->run_queue_timeout,
                    s.interrupted());
  });
}

}  // namespace vmshift::cli
