#include "cli/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/format.h"
#include "base/json.h"
#include "migrate/live_storage.h"

namespace vmshift::cli {

Display choose_display(bool json) {
  if (json) return Display::kJson;
  return ::isatty(STDERR_FILENO) ? Display::kBar : Display::kQuiet;
}

std::string format_eta(std::optional<double> s) {
  if (!s) return "--";
  auto secs = static_cast<long long>(*s + 0.5);
  if (secs >= 3600) return fmt::format("{}h{:02}m", secs / 3600, (secs / 60) % 60);
  if (secs >= 60) return fmt::format("{}m{:02}s", secs / 60, secs % 60);
  return fmt::format("{}s", secs);
}

namespace {
void emit(const Json& j) {
  fmt::print("{}\n", j.dump());
  std::fflush(stdout);
}
}  // namespace

void ProgressDisplay::clear_bar() {
  if (bar_shown_) {
    fmt::print(stderr, "\r\033[K");
    bar_shown_ = false;
  }
}

void ProgressDisplay::started(const core::Job& job) {
  if (mode_ == Display::kJson)
    emit(Json::object()
             .set("event", Json::string("started"))
             .set("job", Json::integer(job_))
             .set("type", Json::string(job.type))
             .set("vm", Json::string(job.vm)));
  else if (mode_ == Display::kBar)
    fmt::print(stderr, "job {}: {} of {} started\n", job_, job.type, job.vm);
}

void ProgressDisplay::waiting(const std::string& why) {
  if (mode_ == Display::kJson) {
    emit(Json::object()
             .set("event", Json::string("queued"))
             .set("job", Json::integer(job_))
             .set("why", Json::string(why)));
  } else if (mode_ == Display::kBar) {
    clear_bar();
    fmt::print(stderr, "job {}: {}\n", job_, why);
  }
}

void ProgressDisplay::step(const std::string& name, core::StepState state,
                           const std::string& detail) {
  if (mode_ == Display::kJson) {
    emit(Json::object()
             .set("event", Json::string("step"))
             .set("job", Json::integer(job_))
             .set("step", Json::string(name))
             .set("state", Json::string(core::to_string(state)))
             .set("detail", Json::string(detail)));
  } else if (mode_ == Display::kBar && state != core::StepState::kRunning) {
    clear_bar();
    fmt::print(stderr, "  {:<8} {:<8} {}\n", name, core::to_string(state), detail);
  }
}

void ProgressDisplay::progress(std::string_view phase, const core::ProgressMeter& m) {
  progress(phase, m.done(), m.total(), m.rate(), m.eta_seconds());
}

void ProgressDisplay::progress(std::string_view phase, std::int64_t done, std::int64_t total,
                               double rate, std::optional<double> eta) {
  auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(mode_ == Display::kJson ? 1000 : 200)) return;
  last_ = now;
  if (mode_ == Display::kJson) {
    Json j = Json::object()
                 .set("event", Json::string("progress"))
                 .set("job", Json::integer(job_))
                 .set("phase", Json::string(phase))
                 .set("done", Json::integer(done))
                 .set("total", Json::integer(total))
                 .set("rate", Json::number(rate));
    if (eta) j.set("eta", Json::number(*eta));
    emit(j);
  } else if (mode_ == Display::kBar) {
    constexpr int kWidth = 24;
    double percent =
        total > 0
            ? std::clamp(100.0 * static_cast<double>(done) / static_cast<double>(total), 0.0, 100.0)
            : 0.0;
    int filled = static_cast<int>(percent / 100 * kWidth);
    std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                      std::string(static_cast<std::size_t>(kWidth - filled), '.');
    fmt::print(stderr, "\r\033[K  [{}] {:<5} {:5.1f}%  {} / {}  {}/s  ETA {}{}", bar, phase,
               percent, human_bytes(static_cast<std::uint64_t>(done)),
               human_bytes(static_cast<std::uint64_t>(total)),
               human_bytes(static_cast<std::uint64_t>(rate)), format_eta(eta), extra_);
    std::fflush(stderr);
    bar_shown_ = true;
  }
}

void ProgressDisplay::detail(const Json& figures) {
  if (mode_ == Display::kJson) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_detail_ < std::chrono::milliseconds(1000)) return;
    last_detail_ = now;
    Json j = figures.clone();
    j.set("event", Json::string("stats")).set("job", Json::integer(job_));
    emit(j);
    return;
  }
  extra_.clear();
  if (auto pass = figures.find_int("iteration"); pass && *pass > 0)
    extra_ += fmt::format("  pass {}", *pass);
  if (auto dirty = figures.find_int("dirty_rate"); dirty && *dirty > 0)
    extra_ += fmt::format("  dirty {}/s", human_bytes(static_cast<std::uint64_t>(*dirty)));
  if (auto throttle = figures.find_int("throttle"); throttle && *throttle > 0)
    extra_ += fmt::format("  throttle {}%", *throttle);
}

void ProgressDisplay::note(const std::string& message) {
  if (mode_ == Display::kJson) {
    emit(Json::object()
             .set("event", Json::string("note"))
             .set("job", Json::integer(job_))
             .set("message", Json::string(message)));
  } else if (mode_ == Display::kBar) {
    clear_bar();
    fmt::print(stderr, "  note: {}\n", message);
  }
}

void ProgressDisplay::finished(const core::JobOutcome& o, std::optional<std::int64_t> pause_ms) {
  if (mode_ == Display::kJson) {
    Json j = Json::object()
                 .set("event", Json::string("finished"))
                 .set("job", Json::integer(job_))
                 .set("state", Json::string(core::to_string(o.state)))
                 .set("message", Json::string(o.message));
    if (pause_ms) j.set("pause_ms", Json::integer(*pause_ms));
    emit(j);
    return;
  }
  clear_bar();
  fmt::print("job {} {}: {}\n", job_, core::to_string(o.state), o.message);
}

}  // namespace vmshift::cli
