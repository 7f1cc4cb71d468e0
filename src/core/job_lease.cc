#include "core/job_lease.h"

#include <optional>

#include "base/error.h"
#include "base/log.h"

namespace vmshift::core {

Heartbeat::Heartbeat(const std::string& path, std::int64_t id, std::chrono::milliseconds interval,
                     std::chrono::milliseconds busy_timeout)
    : thread_([this, path, id, interval, busy_timeout] { run(path, id, interval, busy_timeout); }) {
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Heartbeat::run(const std::string& path, std::int64_t id, std::chrono::milliseconds interval,
                    std::chrono::milliseconds busy_timeout) {
  std::optional<JobStore> store;
  bool failing = false;
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, interval, [&] { return stop_; })) {
    lock.unlock();
    try {
      if (!store) store.emplace(JobStore::open(path, busy_timeout));
      store->renew_lease(id);
      if (failing) log::info("job", "job {}: its lease is renewed again", id);
      failing = false;
      lost_ = false;
      std::lock_guard problem_lock(problem_mu_);
      problem_.clear();
    } catch (const Error& e) {
      // Another process holds the lease (or the job ended): the owner's
      // own writes fail the same way, and it reports that.
      if (e.code() == ErrorCode::kFailedPrecondition) lost_ = true;
      {
        std::lock_guard problem_lock(problem_mu_);
        problem_ = e.what();
      }
      if (!failing)
        log::warn("job", "job {}: cannot renew its lease: {}; trying again every {} ms", id,
                  e.what(), interval.count());
      failing = true;
    } catch (const std::exception& e) {
      if (!failing) log::warn("job", "job {}: cannot renew its lease: {}", id, e.what());
      failing = true;
    }
    lock.lock();
  }
}

}  // namespace vmshift::core
