// vmshift copy, vmshift compare.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <string>

#include "core/job_store.h"
#include "hosts/inventory.h"
#include "migrate/copy_files.h"

namespace vmshift::cli {

struct CopyArgs {
  std::string from;          // HOST:PATH
  std::string to;            // HOST:PATH
  double bandwidth_mib = 0;  // MiB/s as given; fractions allowed
  int chunk_mib = 64;
  bool verify = false;
  bool force = false;
  bool detach = false;
  bool json = false;
  int queue_timeout = 3600;
};

// The job's options; throws Error(kInvalidArgument) on bad ones.
migrate::CopyJobOptions copy_options(const CopyArgs& args, const hosts::Inventory& inventory);
// Adds copy's arguments and options to cmd.
void add_copy_options(CLI::App* cmd, CopyArgs& args);

int copy(const CopyArgs& args, const hosts::Inventory& inventory, const std::string& store_path,
         const std::atomic<bool>* interrupted);
int compare(const std::string& a, const std::string& b, int chunk_mib,
            const hosts::Inventory& inventory, bool json);

}  // namespace vmshift::cli
