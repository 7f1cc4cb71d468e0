// vmshift jobs, jobs show/cancel/wait/resume/run.
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

// Continues a failed copy or network migration where it stopped.
int jobs_resume(const std::string& store_path, std::int64_t id, const hosts::Inventory& inventory,
                bool json, bool detach, const std::atomic<bool>* interrupted);

// Runs a created job in this process with the progress display, or (detach)
// in a background process whose output goes to the job's log; then prints
// the job id.
int start_job(const std::string& store_path, std::int64_t id, const hosts::Inventory& inventory,
              bool json, bool detach, int queue_timeout_s, const std::atomic<bool>* interrupted);

}  // namespace vmshift::cli
