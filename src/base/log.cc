#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "base/format.h"

namespace vmshift::log {
namespace {

Level level_from_env() {
  if (const char* debug = std::getenv("VMSHIFT_DEBUG");
      debug != nullptr && *debug != '\0' && std::string_view(debug) != "0")
    return Level::kDebug;
  const char* env = std::getenv("VMSHIFT_LOG");
  if (env == nullptr) return Level::kWarn;
  std::string v(env);
  if (v == "debug") return Level::kDebug;
  if (v == "info") return Level::kInfo;
  if (v == "error") return Level::kError;
  return Level::kWarn;
}

std::atomic<Level>& current() {
  static std::atomic<Level> level{level_from_env()};
  return level;
}

std::mutex& write_mutex() {
  static std::mutex m;
  return m;
}

const char* name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "?";
}

}  // namespace

Level level() { return current().load(); }
void set_level(Level l) { current().store(l); }
bool enabled(Level l) { return l >= current().load(); }

void write(Level l, std::string_view component, std::string_view message) {
  std::lock_guard lock(write_mutex());
  std::fprintf(stderr, "vmshift %s [%.*s]: %.*s\n", name(l), static_cast<int>(component.size()),
               component.data(), static_cast<int>(message.size()), message.data());
}

Trace::~Trace() {
  if (!on_) return;
  std::string took = human_duration(std::chrono::steady_clock::now() - begun_);
  bool failed = std::uncaught_exceptions() > exceptions_;
  write(Level::kDebug, component_,
        failed
            ? fmt::format("{}: failed after {}", call_, took)
            : fmt::format("{}: {}{}done in {}", call_, result_, result_.empty() ? "" : ", ", took));
}

}  // namespace vmshift::log
