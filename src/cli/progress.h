// How a running job shows itself: a progress bar on a terminal, one JSON
// object per line with --json, nothing but the result otherwise.
#pragma once

#include <chrono>
#include <string>

#include "core/runner.h"

namespace vmshift::cli {

enum class Display { kBar, kJson, kQuiet };

// kJson if asked; else kBar when stderr is a terminal; else kQuiet.
Display choose_display(bool json);

class ProgressDisplay : public core::Observer {
 public:
  ProgressDisplay(Display mode, std::int64_t job) : mode_(mode), job_(job) {}
  void started(const core::Job& job) override;
  void waiting(const std::string& why) override;
  void step(const std::string& name, core::StepState state, const std::string& detail) override;
  void progress(std::string_view phase, const core::ProgressMeter& meter) override;
  // The same from figures another process measured (a job process's events).
  void progress(std::string_view phase, std::int64_t done, std::int64_t total, double rate,
                std::optional<double> eta_seconds);
  void note(const std::string& message) override;
  void detail(const Json& figures) override;
  void finished(const core::JobOutcome& outcome, std::optional<std::int64_t> pause_ms);

 private:
  void clear_bar();
  Display mode_;
  std::int64_t job_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point last_{};
  std::chrono::steady_clock::time_point last_detail_{};
  std::string extra_;  // shown after the bar: memory pass, dirty rate
};

std::string format_eta(std::optional<double> seconds);

}  // namespace vmshift::cli
