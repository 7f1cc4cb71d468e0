// Minimal leveled logging to stderr. The level comes from $VMSHIFT_LOG
// (debug, info, warn, error; default warn), or debug when $VMSHIFT_DEBUG
// is set to anything but "" or "0" (`vmshift --debug` sets it), and can be
// set in code. A job's process always logs at debug level into its job log.
// Full protocol traffic (e.g. every QMP message) is logged at debug level;
// users see short messages from errors, as libvirt does.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <string>
#include <string_view>

namespace vmshift::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

Level level();
void set_level(Level level);
bool enabled(Level level);
void write(Level level, std::string_view component, std::string_view message);

template <typename... Args>
void debug(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(Level::kDebug))
    write(Level::kDebug, component, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void info(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(Level::kInfo))
    write(Level::kInfo, component, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void warn(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(Level::kWarn))
    write(Level::kWarn, component, fmt::format(format, std::forward<Args>(args)...));
}

// Traces one call into another program's API (libvirt's, QEMU's) at
// debug level, as libvirt's monitor does with VIR_DEBUG: when it begins,
// its name and its arguments with their units ("vm='g1' host='h1'
// bandwidth=1048576 B/s"); when it ends, the same name and how long it
// took, or that it failed (an exception left the scope). Declare one at
// the top of the scope that makes the call:
//   log::Trace trace("libvirt", "virDomainSaveFlags", "vm='{}' path='{}'", vm, path);
class Trace {
 public:
  template <typename... Args>
  Trace(std::string_view component, std::string_view call, fmt::format_string<Args...> format,
        Args&&... args)
      : on_(enabled(Level::kDebug)), exceptions_(std::uncaught_exceptions()) {
    if (!on_) return;
    component_ = component;
    call_ = fmt::format("{} {}", call, fmt::format(format, std::forward<Args>(args)...));
    begun_ = std::chrono::steady_clock::now();
    write(Level::kDebug, component_, call_);
  }
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;
  ~Trace();

  // Adds what the call returned to the closing line ("state=running").
  template <typename... Args>
  void result(fmt::format_string<Args...> format, Args&&... args) {
    if (on_) result_ = fmt::format(format, std::forward<Args>(args)...);
  }

 private:
  bool on_;
  int exceptions_;
  std::string component_;
  std::string call_;
  std::string result_;
  std::chrono::steady_clock::time_point begun_;
};

}  // namespace vmshift::log
