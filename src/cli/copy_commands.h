// vmshift copy, vmshift compare, vmshift jobs resume.
#pragma once

#include <atomic>
#include <string>

#include "core/job_store.h"
#include "hosts/inventory.h"

namespace vmshift::cli {

struct CopyArgs {
  std::string from;  // HOST:PATH
  std::string to;    // HOST:PATH
  double bandwidth_mib = 0;
  int chunk_mib = 64;
  bool verify = false;
  bool force = false;
  bool detach = false;
  bool json = false;
  int queue_timeout = 3600;
};

int copy(const CopyArgs& args, const hosts::Inventory& inventory, const std::string& store_path,
         const std::atomic<bool>* interrupted);
int compare(const std::string& a, const std::string& b, int chunk_mib,
            const hosts::Inventory& inventory, bool json);
int jobs_resume(const std::string& store_path, std::int64_t id, const hosts::Inventory& inventory,
                bool json, bool detach, const std::atomic<bool>* interrupted);

}  // namespace vmshift::cli
