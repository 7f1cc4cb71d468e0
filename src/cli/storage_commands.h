// vmshift move-storage: moving a running VM's disks on its host, live.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "hosts/inventory.h"
#include "migrate/live_storage.h"

namespace vmshift::cli {

struct MoveStorageArgs {
  std::optional<std::string> vm;
  std::optional<std::string> host;
  std::optional<std::string> qmp;
  std::optional<std::string> to;
  std::vector<std::string> disks;  // TARGET or TARGET=PATH
  double bandwidth_mib = 0;        // MiB/s as given; fractions allowed
  bool sync_writes = false;
  bool keep_source = false;
  bool force = false;
  bool shallow = false;
  bool detach = false;
  bool json = false;
  int progress_timeout = 150;
  int queue_timeout = 3600;
};

// The job's options; throws Error(kInvalidArgument) on bad ones.
migrate::LiveStorageOptions move_storage_options(const MoveStorageArgs& args);
// Adds move-storage's arguments and options to cmd.
void add_move_storage_options(CLI::App* cmd, MoveStorageArgs& args);

int move_storage(const MoveStorageArgs& args, const hosts::Inventory& inventory,
                 const std::string& store_path, const std::atomic<bool>* interrupted);

}  // namespace vmshift::cli
