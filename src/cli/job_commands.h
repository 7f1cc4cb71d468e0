// vmshift jobs, jobs show/cancel/wait, move-storage.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/job_store.h"
#include "hosts/inventory.h"

namespace vmshift::cli {

int jobs_list(core::JobStore& store, bool json, int limit);
int jobs_show(core::JobStore& store, std::int64_t id, bool json);
int jobs_cancel(core::JobStore& store, std::int64_t id);
int jobs_wait(core::JobStore& store, std::int64_t id, int timeout_s, bool json);
// Runs a queued job in this process (what --detach starts in the background).
// Gives up waiting for a slot after queue_timeout_s (the job is cancelled).
int jobs_run(const std::string& store_path, std::int64_t id, const hosts::Inventory& inventory,
             bool json, int queue_timeout_s, const std::atomic<bool>* interrupted);

// Runs a created job in this process with the progress display, or (detach)
// in a background process whose output goes to the job's log; then prints
// the job id.
int start_job(const std::string& store_path, std::int64_t id, const hosts::Inventory& inventory,
              bool json, bool detach, int queue_timeout_s, const std::atomic<bool>* interrupted);

struct MoveStorageArgs {
  std::optional<std::string> vm;
  std::optional<std::string> host;
  std::optional<std::string> qmp;
  std::optional<std::string> to;
  std::vector<std::string> disks;  // TARGET or TARGET=PATH
  double bandwidth_mib = 0;
  bool sync_writes = false;
  bool keep_source = false;
  bool force = false;
  bool shallow = false;
  bool detach = false;
  bool json = false;
  int progress_timeout = 150;
  int queue_timeout = 3600;
};

int move_storage(const MoveStorageArgs& args, const hosts::Inventory& inventory,
                 const std::string& store_path, const std::atomic<bool>* interrupted);

}  // namespace vmshift::cli
