// Minimal leveled logging to stderr. The level comes from $VMSHIFT_LOG
// (debug, info, warn, error; default warn) and can be set in code.
// Full protocol traffic (e.g. every QMP message) is logged at debug level;
// users see short messages from errors, as libvirt does.
#pragma once

#include <fmt/format.h>

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

}  // namespace vmshift::log
