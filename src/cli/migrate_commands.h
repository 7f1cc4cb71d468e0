// vmshift plan, migrate and rate: moving VMs between hosts.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "core/planner.h"
#include "hosts/inventory.h"

namespace vmshift::cli {

struct MigrateArgs {
  std::string vm;
  std::optional<std::string> to;    // destination host
  std::optional<std::string> host;  // source host (default: where the VM is)
  std::optional<std::string> type;
  std::optional<std::string> storage;
  std::vector<std::string> disks;       // TARGET=PATH
  double bandwidth_mib = 0;             // MiB/s as given; fractions allowed
  std::optional<std::string> compress;  // "" from a bare --compress: xbzrle
  int parallel = 0;
  bool auto_converge = false;
  bool postcopy = false;
  int max_downtime_ms = 0;
  int timeout_per_gib = 0;
  int progress_timeout = 120;
  std::string timeout_action = "abort";
  bool tls = false;
  bool keep_source = false;
  bool force = false;
  bool shallow = false;
  bool verify = false;
  bool start = false;
  bool no_measure = false;  // skip the dirty-rate measurement (1 s) of the prediction
  bool detach = false;
  bool json = false;
  int queue_timeout = 3600;
};

// The request the planner gets; throws Error(kInvalidArgument) on bad options.
core::PlanRequest plan_request(const MigrateArgs& args, const hosts::Inventory& inventory);

// Adds the arguments and options plan and migrate share to cmd.
void add_migrate_options(CLI::App* cmd, MigrateArgs& args);

int plan(const MigrateArgs& args, const hosts::Inventory& inventory, const std::string& store_path);
int migrate(const MigrateArgs& args, const hosts::Inventory& inventory,
            const std::string& store_path, const std::atomic<bool>* interrupted);
int rate(const std::string& vm, std::optional<std::string> host, const hosts::Inventory& inventory,
         const std::string& store_path, bool json);

}  // namespace vmshift::cli
