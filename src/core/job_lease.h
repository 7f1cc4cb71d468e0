// A job's lease, kept alive while this process runs the job.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "core/job_store.h"

namespace vmshift::core {

// Renews a job's lease from a database connection of its own, every
// interval, until destroyed. A renewal that fails (the store locked, an
// I/O error) is logged and tried again at the next beat: the lease stays
// alive anyway while this process lives (JobStore::lease_alive), and the
// expiry the renewals record is what others see. lost() tells whether
// another process holds the lease now.
class Heartbeat {
 public:
  static constexpr std::chrono::milliseconds kInterval{3000};
  Heartbeat(const std::string& store_path, std::int64_t id,
            std::chrono::milliseconds interval = kInterval,
            std::chrono::milliseconds busy_timeout = JobStore::kBusyTimeout);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  bool lost() const { return lost_.load(); }
  // Why the last renewal failed ("" if it worked).
  std::string problem() const {
    std::lock_guard lock(problem_mu_);
    return problem_;
  }

 private:
  void run(const std::string& path, std::int64_t id, std::chrono::milliseconds interval,
           std::chrono::milliseconds busy_timeout);
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> lost_{false};
  mutable std::mutex problem_mu_;
  std::string problem_;
  std::thread thread_;
};

}  // namespace vmshift::core
