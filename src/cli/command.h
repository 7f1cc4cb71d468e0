// How the CLI's command groups plug in: each group's file registers its
// subcommands on the CLI11 app with an action each; main() parses and runs
// the action of the subcommand chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/job_store.h"
#include "hosts/inventory.h"

namespace vmshift::cli {

// What a command's action may need, each made on first use.
class Session {
 public:
  explicit Session(std::optional<std::string> config) : config_(std::move(config)) {}

  // The inventory (--config, $VMSHIFT_CONFIG, or the default files).
  const hosts::Inventory& inventory();
  // The job store. Every command that touches jobs first finishes or undoes
  // the jobs whose vmshift process died; from then on SIGINT and SIGTERM set
  // interrupted() instead of ending the process.
  core::JobStore& jobs();
  const std::string& store_path();
  const std::atomic<bool>* interrupted() const;

 private:
  std::optional<std::string> config_;
  std::optional<hosts::Inventory> inventory_;
  std::string store_path_;
  std::optional<core::JobStore> store_;
};

using Action = std::function<int(Session&)>;

class Registry {
 public:
  // Runs `action` when `command` is the subcommand chosen.
  void on(const CLI::App* command, Action action) { actions_[command] = std::move(action); }
  // Runs the action of the innermost subcommand chosen (`jobs show`, not
  // `jobs`); 0 if it has none.
  int dispatch(const CLI::App& app, Session& session) const;

 private:
  std::map<const CLI::App*, Action> actions_;
};

// Each group's registration (in its own file).
void register_tool_commands(CLI::App& app, Registry& registry);     // version, qmp
void register_host_commands(CLI::App& app, Registry& registry);     // hosts, hosts baseline, vms
void register_job_commands(CLI::App& app, Registry& registry);      // jobs ...
void register_storage_commands(CLI::App& app, Registry& registry);  // move-storage
void register_migrate_commands(CLI::App& app, Registry& registry);  // plan, migrate, rate
void register_copy_commands(CLI::App& app, Registry& registry);     // copy, compare

// Every group, in the order `vmshift --help` lists them.
void register_commands(CLI::App& app, Registry& registry);

}  // namespace vmshift::cli
