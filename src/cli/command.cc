#include "cli/command.h"

#include <fmt/format.h>
#include <signal.h>

#include "core/runner.h"

namespace vmshift::cli {
namespace {

std::atomic<bool> interrupted_flag{false};

void on_interrupt(int) { interrupted_flag.store(true); }

}  // namespace

const hosts::Inventory& Session::inventory() {
  if (!inventory_) inventory_.emplace(hosts::Inventory::load(config_));
  return *inventory_;
}

core::JobStore& Session::jobs() {
  if (store_) return *store_;
  const hosts::Inventory& inv = inventory();
  store_path_ = core::JobStore::default_path();
  store_.emplace(core::JobStore::open(store_path_));
  for (const auto& line : core::recover_stale_jobs(*store_, inv))
    fmt::print(stderr, "vmshift: {}\n", line);
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return *store_;
}

const std::string& Session::store_path() {
  jobs();
  return store_path_;
}

const std::atomic<bool>* Session::interrupted() const { return &interrupted_flag; }

int Registry::dispatch(const CLI::App& app, Session& session) const {
  const CLI::App* chosen = &app;
  for (auto subs = chosen->get_subcommands(); !subs.empty(); subs = chosen->get_subcommands())
    chosen = subs.front();
  auto it = actions_.find(chosen);
  return it == actions_.end() ? 0 : it->second(session);
}

void register_commands(CLI::App& app, Registry& registry) {
  register_tool_commands(app, registry);
  register_host_commands(app, registry);
  register_job_commands(app, registry);
  register_storage_commands(app, registry);
  register_migrate_commands(app, registry);
  register_copy_commands(app, registry);
}

}  // namespace vmshift::cli
