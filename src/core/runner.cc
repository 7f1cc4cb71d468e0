#include "core/runner.h"

#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/json.h"
#include "base/log.h"
#include "base/poll_until.h"
#include "core/preflight.h"
#include "guest/libvirt_guest.h"
#include "guest/qmp_guest.h"
#include "hosts/libvirt.h"
#include "hosts/libvirt_host.h"
#include "migrate/copy_files.h"
#include "migrate/quick_migration.h"
#include "transfer/libvirt_volume.h"

namespace vmshift::core {
namespace {

constexpr auto kCancelPoll = std::chrono::milliseconds(300);
constexpr auto kProgressWrite = std::chrono::milliseconds(500);
constexpr auto kHoldLimit = std::chrono::minutes(10);

Json spec_json(const GuestSpec& s) {
  return Json::object()
      .set("kind", Json::string(s.kind))
      .set("host", Json::string(s.host))
      .set("vm", Json::string(s.vm))
      .set("socket", Json::string(s.socket));
}

GuestSpec spec_from(const Json& j) {
  return GuestSpec{j.get_string("kind"), j.get_string("host"), j.get_string("vm"),
                   j.get_string("socket")};
}

StepState step_state(migrate::StepState s) {
  switch (s) {
    case migrate::StepState::kRunning:
      return StepState::kRunning;
    case migrate::StepState::kDone:
      return StepState::kDone;
    case migrate::StepState::kFailed:
      return StepState::kFailed;
    case migrate::StepState::kSkipped:
      return StepState::kSkipped;
    case migrate::StepState::kUndone:
      return StepState::kUndone;
  }
  return StepState::kFailed;
}

JobState job_state(migrate::Outcome o) {
  switch (o) {
    case migrate::Outcome::kCompleted:
      return JobState::kCompleted;
    case migrate::Outcome::kFailed:
      return JobState::kFailed;
    case migrate::Outcome::kCancelled:
      return JobState::kCancelled;
    case migrate::Outcome::kRolledBack:
      return JobState::kRolledBack;
  }
  return JobState::kFailed;
}

constexpr auto kFinishDeadline = std::chrono::seconds(30);

// Where the VM's disks are, from the job's plan (or a live storage
// migration's last recovery data), for messages that cannot count on the
// job store to tell.
std::string files_note(const Job& job, const StoreContext& ctx, bool moved) {
  std::vector<std::string> files;
  std::string host = moved ? job.dest_host : job.source_host;
  try {
    Json params = Json::parse(job.params);
    if (params.has("plan")) {
      migrate::LiveMigrationPlan plan = migrate::live_plan_from_json(params.get("plan"));
      for (const auto& c : plan.copies)
        files.push_back(fmt::format("{} '{}'", c.target, moved ? c.dest : c.source));
      for (const auto& [target, path] : plan.shared)
        files.push_back(fmt::format("{} '{}' (shared)", target, path));
    } else if (ctx.last_state()) {
      for (const Json& d : Json::parse(*ctx.last_state()).get("disks").items()) {
        bool pivoted = d.has("pivoted") && d.get_bool("pivoted");
        files.push_back(fmt::format("{} '{}'", d.get_string("target"),
                                    d.get_string(pivoted ? "dest" : "source")));
      }
    }
  } catch (const Error&) {
  }
  if (files.empty()) return fmt::format("`vmshift jobs show {}` lists its files.", job.id);
  return fmt::format("The VM's data is in {} on host '{}'.", fmt::join(files, ", "), host);
}

std::string describe_blockers(const std::vector<Job>& blockers) {
  std::string s;
  for (const auto& b : blockers)
    s += fmt::format("{}job {} ({} of {}, {})", s.empty() ? "" : ", ", b.id, b.type, b.vm,
                     to_string(b.state));
  return s;
}

}  // namespace

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

StoreContext::StoreContext(JobStore& store, std::int64_t id, std::vector<std::string> steps,
                           Observer& obs, const std::atomic<bool>* interrupted)
    : store_(store), id_(id), steps_(std::move(steps)), obs_(obs), interrupted_(interrupted) {}

void StoreContext::step(std::size_t index, migrate::StepState state, const std::string& detail) {
  pending_steps_[index] = {step_state(state), detail};
  write();
  obs_.step(index < steps_.size() ? steps_[index] : "?", step_state(state), detail);
}

void StoreContext::progress(std::string_view phase, std::uint64_t done, std::uint64_t total) {
  meter_.update(static_cast<std::int64_t>(done), static_cast<std::int64_t>(total));
  auto now = std::chrono::steady_clock::now();
  if (now - last_write_ >= kProgressWrite) {
    pending_progress_ = true;
    last_write_ = now;
    write();
  }
  obs_.progress(phase, meter_);
}

void StoreContext::pause(std::chrono::milliseconds measured) {
  switched_ = true;  // every type measures its pause once the VM runs at the destination
  pending_pause_ = measured.count();
  write();
}

void StoreContext::save_state(const std::string& json) {
  last_state_ = json;
  pending_state_ = json;
  write();
}

bool StoreContext::cancel_requested() {
  if (cancelling_) return true;
  bool asked = interrupted_ != nullptr && interrupted_->load();
  auto now = std::chrono::steady_clock::now();
  if (!asked && !switched_ && problem_.empty() && heartbeat_ != nullptr) {
    if (std::string why = heartbeat_->problem(); !why.empty()) {
      std::string what = heartbeat_->lost() ? "this process no longer holds its lease"
                                            : "its lease could not be renewed";
      failed(Error(ErrorCode::kIo, fmt::format("{}: {}", what, why)));
    }
  }
  if (!asked && !switched_ && !problem_.empty()) asked = store_cancel_ = true;
  if (!asked && now >= retry_at_ && now - last_cancel_check_ >= kCancelPoll) {
    last_cancel_check_ = now;
    try {
      asked = store_.get(id_).cancel_requested;
    } catch (const Error& e) {
      failed(e);
      if (!switched_) asked = store_cancel_ = true;
    }
  }
  if (asked) {
    cancelling_ = true;
    pending_cancelling_ = true;
    write();
    obs_.note(store_cancel_ ? fmt::format("the job store cannot be written ({}): undoing what was "
                                          "done, from memory",
                                          first_problem_)
                            : "cancelling: undoing what was done");
  }
  return cancelling_;
}

void StoreContext::write(bool now) {
  if (!now && !problem_.empty() && std::chrono::steady_clock::now() < retry_at_) return;
  if (!has_pending()) return;
  bool wrote = false;
  try {
    // Recovery data first: it is what another process would act on.
    if (pending_state_) {
      store_.set_state_data(id_, *pending_state_);
      pending_state_.reset();
      wrote = true;
    }
    while (!pending_steps_.empty()) {
      auto it = pending_steps_.begin();
      try {
        store_.set_step(id_, it->first, it->second.first, it->second.second);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kInvalidArgument) throw;
        log::warn("job", "job {}: {}", id_, e.what());  // no such step: nothing to keep
      }
      pending_steps_.erase(it);
      wrote = true;
    }
    if (pending_pause_) {
      store_.set_pause(id_, *pending_pause_);
      pending_pause_.reset();
      wrote = true;
    }
    if (pending_cancelling_) {
      store_.set_state(id_, JobState::kCancelling);
      pending_cancelling_ = false;
      wrote = true;
    }
    if (pending_progress_) {
      store_.set_progress(id_, meter_.done(), meter_.total(), meter_.rate(), meter_.eta_seconds());
      pending_progress_ = false;
      wrote = true;
    }
    if (wrote && !problem_.empty()) {
      log::info("job", "job {}: the job store can be written again", id_);
      problem_.clear();
    }
  } catch (const Error& e) {
    failed(e);
  }
}

void StoreContext::failed(const Error& e) {
  if (problem_.empty())
    log::warn("job",
              "job {}: the job store cannot be written: {}; what the job reports is kept in "
              "memory and written when it can be",
              id_, e.what());
  problem_ = e.what();
  if (first_problem_.empty()) first_problem_ = problem_;
  retry_at_ = std::chrono::steady_clock::now() + kStoreRetry;
}

void StoreContext::note(const std::string& message) { obs_.note(message); }
void StoreContext::detail(const Json& figures) { obs_.detail(figures); }

// Fault injection for tests: VMSHIFT_HOLD_AT=POINT holds the job at that
// checkpoint until it is cancelled (or kHoldLimit passes), so a test can
// act on a job in a phase that is otherwise too short to hit. With
// VMSHIFT_HOLD_FILE=PATH the hold also ends, and the job goes on, once
// that file is gone.
void StoreContext::checkpoint(std::string_view point) {
  if (point == "switched" || point == "restored") switched_ = true;
  // VMSHIFT_FAIL_AT=POINT makes the step at that checkpoint fail.
  if (const char* fail = std::getenv("VMSHIFT_FAIL_AT"); fail != nullptr && point == fail)
    throw Error(ErrorCode::kCommandFailed,
                fmt::format("injected failure at {} (VMSHIFT_FAIL_AT)", point));
  const char* hold = std::getenv("VMSHIFT_HOLD_AT");
  if (hold == nullptr || point != hold) return;
  const char* file = std::getenv("VMSHIFT_HOLD_FILE");
  obs_.note(fmt::format("held at {} (VMSHIFT_HOLD_AT) until cancelled{}", point,
                        file != nullptr ? fmt::format(" or '{}' is removed", file) : ""));
  poll_until(Deadline::after(kHoldLimit), std::chrono::milliseconds(100), [&] {
    return cancel_requested() || (file != nullptr && !std::filesystem::exists(file));
  });
}

void StoreContext::flush() {
  pending_progress_ = true;
  write();
}

bool StoreContext::finish(JobState state, const std::string& message, Deadline deadline) {
  return poll_until(deadline, std::chrono::milliseconds(500), [&] {
    write(true);
    if (has_pending()) return false;
    try {
      store_.finish(id_, state, message);
      problem_.clear();
      return true;
    } catch (const Error& e) {
      failed(e);
      return false;
    }
  });
}

std::unique_ptr<guest::Guest> open_guest(const GuestSpec& spec, const hosts::Inventory& inv) {
  if (spec.kind == "qmp") return std::make_unique<guest::QmpGuest>(spec.socket);
  const hosts::HostConfig& h = inv.host(spec.host);
  return std::make_unique<guest::LibvirtGuest>(hosts::Connection::open(h.uri, h.name), spec.vm);
}

LimitFn limits_from(const hosts::Inventory& inv) {
  return [&inv](const std::string& host, LimitClass kind) {
    for (const auto& h : inv.hosts())
      if (h.name == host)
        return kind == LimitClass::kStorage ? h.max_storage_migrations : h.max_live_migrations;
    return 2;  // a host the inventory no longer lists, or a bare QEMU
  };
}

std::string guest_uuid(const GuestSpec& spec, const hosts::Inventory& inv) {
  if (spec.kind == "qmp") {
    // The socket is the bare QEMU's identity: the same socket through
    // another name (a symlink, a relative path) is the same VM.
    char* real = ::realpath(spec.socket.c_str(), nullptr);
    std::string path = real != nullptr ? real : spec.socket;
    std::free(real);
    return "qmp:" + path;
  }
  const hosts::HostConfig& h = inv.host(spec.host);
  hosts::Connection conn = hosts::Connection::open(h.uri, h.name);
  hosts::Domain d = conn.domain(spec.vm);
  return hosts::domain_uuid(d.get());
}

std::int64_t create_live_storage_job(JobStore& store, const GuestSpec& spec,
                                     const std::string& vm_uuid,
                                     const migrate::LiveStorageOptions& options) {
  NewJob j;
  j.vm = spec.vm.empty() ? spec.socket : spec.vm;
  j.vm_uuid = vm_uuid;
  j.type = "live-storage";
  j.source_host = spec.host;
  j.dest_host = spec.host;
  j.slots = slots_for(j.type, spec.host, spec.host);
  j.steps = migrate::live_storage_steps();
  j.params =
      Json::object().set("guest", spec_json(spec)).set("options", migrate::to_json(options)).dump();
  return store.create(j);
}

std::vector<Slot> slots_for(const std::string& type, const std::string& source,
                            const std::string& dest) {
  if (type == "live-storage") return {{source, LimitClass::kStorage}};
  // Quick storage and network migrations move storage (to another host or
  // not); a quick migration moves a running VM between hosts.
  if (type == "qsm" || type == "network" || type == "copy")
    return {{source, LimitClass::kStorage}, {dest, LimitClass::kStorage}};
  std::vector<Slot> slots = {{source, LimitClass::kLive}, {dest, LimitClass::kLive}};
  // A live VSM counts as one live and one storage migration on both hosts.
  if (type == "live-vsm")
    slots.insert(slots.end(), {{source, LimitClass::kStorage}, {dest, LimitClass::kStorage}});
  return slots;
}

namespace {
std::vector<std::string> steps_of(const std::string& type);
migrate::Result recover_one(JobStore& store, const Job& job, const hosts::Inventory& inv,
                            StoreContext& ctx);
}  // namespace

std::int64_t create_live_migration_job(JobStore& store, const std::string& type,
                                       const migrate::LiveMigrationPlan& plan,
                                       const std::string& vm_uuid,
                                       const migrate::LiveMigrationOptions& options) {
  NewJob j;
  j.vm = plan.vm;
  j.vm_uuid = vm_uuid;
  j.type = type;
  j.source_host = plan.source_host;
  j.dest_host = plan.dest_host;
  j.slots = slots_for(type, plan.source_host, plan.dest_host);
  j.steps = steps_of(type);
  migrate::LiveMigrationOptions o = options;
  o.type = migrate::parse_kind(type);  // a rerun after a wait plans the same type
  j.params =
      Json::object().set("plan", migrate::to_json(plan)).set("options", migrate::to_json(o)).dump();
  return store.create(j);
}

namespace {

bool is_live_migration(const std::string& type) { return type == "live" || type == "live-vsm"; }

bool is_saved_type(const std::string& type) {
  return type == "qsm" || type == "quick" || type == "network";
}

std::vector<std::string> steps_of(const std::string& type) {
  if (is_live_migration(type)) return migrate::live_migration_steps();
  if (type == "copy") return migrate::copy_job_steps();
  if (type == "qsm") return migrate::qsm_steps();
  if (type == "quick") return migrate::quick_steps();
  if (type == "network") return migrate::network_steps();
  return migrate::live_storage_steps();
}

// A libvirt host and its files through volume streams, for the copy engine.
struct LibvirtSite {
  hosts::LibvirtHost host;
  migrate::Site site;
  explicit LibvirtSite(hosts::Connection conn)
      : host(std::move(conn)),
        site{host, [this](const std::string& path) -> std::unique_ptr<transfer::Endpoint> {
               return std::make_unique<transfer::LibvirtVolume>(host.libvirt_storage(), path);
             }} {}
  LibvirtSite(const LibvirtSite&) = delete;
  LibvirtSite& operator=(const LibvirtSite&) = delete;
};

hosts::LibvirtHost open_host(const hosts::Inventory& inv, const std::string& name) {
  const hosts::HostConfig& h = inv.host(name);
  return hosts::LibvirtHost(hosts::Connection::open(h.uri, h.name));
}

std::unique_ptr<LibvirtSite> open_site(const hosts::Inventory& inv, const std::string& name) {
  const hosts::HostConfig& h = inv.host(name);
  return std::make_unique<LibvirtSite>(hosts::Connection::open(h.uri, h.name));
}

migrate::Result run_copy(const Job& job, const hosts::Inventory& inv, StoreContext& ctx) {
  Json params = Json::parse(job.params);
  migrate::CopyJobOptions o = migrate::copy_options_from_json(params.get("options"));
  std::unique_ptr<LibvirtSite> from = open_site(inv, o.from_host);
  std::unique_ptr<LibvirtSite> to = open_site(inv, o.to_host);
  std::map<std::string, std::string> in_use;
  if (o.force) {
    try {
      in_use = files_in_use(inv, hosts_seeing(inv, o.to_host, o.to_path));
    } catch (const Error& e) {
      return {migrate::Outcome::kFailed,
              fmt::format("Refused: --force, but which VMs use {}:{} cannot be checked: {}. "
                          "Nothing was changed.",
                          o.to_host, o.to_path, e.what())};
    }
  }
  return migrate::run_copy_job(from->site, to->site, o, job.state_data, ctx, in_use);
}

// Runs a qsm, quick or network job. A network job resumed from its saved
// state keeps its plan (its half-made copies would fail the checks).
// The checks run again as a job starts (things may have changed while it
// waited): the fresh plan, with the prediction made when the job was
// created (that one measured the guest); or the refusal.
std::optional<migrate::Result> check_again(const Job& job, const hosts::Inventory& inv,
                                           StoreContext& ctx,
                                           const migrate::LiveMigrationOptions& options,
                                           migrate::LiveMigrationPlan& plan) {
  PlanRequest req{job.vm, job.source_host, options};
  Preflight pf = preflight(inv, req, nullptr, PreflightOptions{.measure = false});
  if (!pf.plan.ok()) {
    std::string why = fmt::format("{}", fmt::join(pf.plan.failures(), "; "));
    ctx.step(0, migrate::StepState::kFailed, why);
    return migrate::Result{
        migrate::Outcome::kFailed,
        fmt::format("Refused: {}. Nothing was changed; the VM stays on host '{}'.", why,
                    job.source_host)};
  }
  migrate::Prediction first = plan.prediction;
  plan = pf.plan.live;
  plan.prediction = first;
  return std::nullopt;
}

migrate::Result run_saved_type(const Job& job, const hosts::Inventory& inv, StoreContext& ctx) {
  Json params = Json::parse(job.params);
  migrate::LiveMigrationOptions options = migrate::live_options_from_json(params.get("options"));
  migrate::LiveMigrationPlan plan = migrate::live_plan_from_json(params.get("plan"));
  bool resuming = !job.state_data.empty() && job.state_data != "{}";
  if (!resuming)
    if (auto refused = check_again(job, inv, ctx, options, plan)) return *refused;
  std::unique_ptr<LibvirtSite> src = open_site(inv, job.source_host);
  std::unique_ptr<LibvirtSite> dst = open_site(inv, job.dest_host);
  if (job.type == "qsm") return migrate::run_qsm(src->site, dst->site, plan, options, ctx);
  if (job.type == "quick") return migrate::run_quick(src->site, dst->site, plan, options, ctx);
  return migrate::run_network(src->site, dst->site, plan, options, job.state_data, ctx);
}

// Chunks done / in all of the copies a job's state records.
std::string copied_so_far(const std::string& state) {
  std::uint64_t done = 0, all = 0;
  try {
    for (const Json& f : Json::parse(state).get("files").items()) {
      transfer::Journal j = transfer::Journal::from_json(f.get("journal"));
      done += j.done.size();
      all += j.chunks();
    }
  } catch (const Error&) {
  }
  return fmt::format("{} of {} chunks", done, all);
}

// Runs a live-storage job; returns nullopt when its checks refused it.
migrate::Result run_live_storage_job(const Job& job, const hosts::Inventory& inv, StoreContext& ctx,
                                     Observer& obs) {
  Json params = Json::parse(job.params);
  GuestSpec spec = spec_from(params.get("guest"));
  migrate::LiveStorageOptions options = migrate::options_from_json(params.get("options"));
  std::unique_ptr<guest::Guest> g = open_guest(spec, inv);
  migrate::LiveStoragePlan plan;
  try {
    // The checks run again: things may have changed while the job waited.
    plan = migrate::plan_live_storage(*g, options, move_storage_in_use(inv, spec, options));
  } catch (const Error& e) {
    ctx.step(0, migrate::StepState::kFailed, e.what());
    return {migrate::Outcome::kFailed, fmt::format("Refused: {}. Nothing was changed.", e.what())};
  }
  for (const auto& n : plan.notes) obs.note(n);
  return migrate::run_live_storage(*g, plan, options, ctx);
}

migrate::Result run_live_migration_job(const Job& job, const hosts::Inventory& inv,
                                       StoreContext& ctx) {
  Json params = Json::parse(job.params);
  migrate::LiveMigrationOptions options = migrate::live_options_from_json(params.get("options"));
  migrate::LiveMigrationPlan plan = migrate::live_plan_from_json(params.get("plan"));
  if (auto refused = check_again(job, inv, ctx, options, plan)) return *refused;
  hosts::LibvirtHost src = open_host(inv, job.source_host);
  hosts::LibvirtHost dst = open_host(inv, job.dest_host);
  return migrate::run_live_migration(src, dst, plan, options, ctx);
}

}  // namespace

std::map<std::string, std::string> move_storage_in_use(const hosts::Inventory& inv,
                                                       const GuestSpec& spec,
                                                       const migrate::LiveStorageOptions& o) {
  if (!o.force || spec.kind != "libvirt") return {};
  std::vector<std::string> paths;
  if (o.to_dir) paths.push_back(*o.to_dir + "/");
  for (const auto& [t, p] : o.disks)
    if (!p.empty()) paths.push_back(p);
  std::vector<std::string> names;
  for (const auto& p : paths)
    for (const auto& h : hosts_seeing(inv, spec.host, p))
      if (std::find(names.begin(), names.end(), h) == names.end()) names.push_back(h);
  return files_in_use(inv, names);
}

JobOutcome run_job(const std::string& store_path, std::int64_t id, const hosts::Inventory& inv,
                   Observer& obs, Deadline queue_deadline, const std::atomic<bool>* interrupted) {
  JobStore store = JobStore::open(store_path);
  LimitFn limits = limits_from(inv);
  std::string last_why;
  // Wait for a slot; renew the queued job's lease meanwhile.
  std::optional<Job> ended;  // it ended (was cancelled) while it waited
  bool started = poll_until(queue_deadline, std::chrono::milliseconds(500), [&] {
    for (;;) {
      Job job = store.get(id);
      if (is_terminal(job.state)) {
        ended = job;
        return true;
      }
      if (interrupted == nullptr || !interrupted->load()) break;
      store.request_cancel(id);
    }
    if (store.try_start(id, limits)) return true;
    std::string why = fmt::format("queued: waiting for a free slot, behind {}",
                                  describe_blockers(store.blocking(id)));
    if (why != last_why) obs.waiting(why);
    last_why = why;
    return false;
  });
  if (ended) return {ended->state, ended->error.empty() ? ended->result : ended->error};
  if (!started) {
    store.request_cancel(id);
    std::string msg = "waited too long for a free slot (--queue-timeout); nothing was changed";
    return {JobState::kCancelled, msg};
  }

  Job job = store.get(id);
  obs.started(job);
  Heartbeat heartbeat(store_path, id);
  StoreContext ctx(store, id, steps_of(job.type), obs, interrupted);
  ctx.watch(heartbeat);
  migrate::Result result;
  try {
    if (is_live_migration(job.type))
      result = run_live_migration_job(job, inv, ctx);
    else if (job.type == "copy")
      result = run_copy(job, inv, ctx);
    else if (is_saved_type(job.type))
      result = run_saved_type(job, inv, ctx);
    else
      result = run_live_storage_job(job, inv, ctx, obs);
    ctx.flush();
  } catch (const std::exception& e) {
    // What recovery does for a dead process puts the VM back on its feet
    // here too (e.g. restores a VM saved by a QSM on its source).
    std::string what = e.what();
    try {
      // From memory: the store may be what failed.
      Job now = job;
      if (ctx.last_state()) now.state_data = *ctx.last_state();
      if (resumable(now.type))
        throw Error(ErrorCode::kFailedPrecondition,
                    fmt::format("nothing to undo; `vmshift jobs resume {}` continues", id));
      migrate::Result r = recover_one(store, now, inv, ctx);
      result = {r.outcome == migrate::Outcome::kCompleted ? migrate::Outcome::kCompleted
                                                          : migrate::Outcome::kFailed,
                fmt::format("Unexpected error: {}. Recovery: {}", what, r.message)};
    } catch (const std::exception& again) {
      result = {migrate::Outcome::kFailed,
                fmt::format("Unexpected error: {}; recovery failed too: {}. The VM and its files "
                            "may be mid-way; `vmshift jobs show {}` lists the steps that ran.",
                            what, again.what(), id)};
    }
  }
  JobState state = job_state(result.outcome);
  std::string message = result.message;
  if (ctx.undone_for_store()) {
    state = JobState::kFailed;
    message = fmt::format(
        "The job store {} could not be written ({}), so the job undid itself from memory, as if "
        "cancelled: {} {}",
        store_path, ctx.first_store_problem(), message, files_note(job, ctx, false));
  }
  if (!ctx.finish(state, message, Deadline::after(kFinishDeadline))) {
    // Nobody else can learn how the job ended: say it here (stderr is the
    // job log of a job that runs in the background).
    message = fmt::format(
        "{} The job store {} still cannot be written ({}): it may still show job {} as running. "
        "{}",
        message, store_path, ctx.store_problem(), id,
        files_note(job, ctx, state == JobState::kCompleted));
    fmt::print(stderr, "vmshift: job {} ended {}: {}\n", id, to_string(state), message);
  }
  return {state, message};
}

std::int64_t create_copy_job(JobStore& store, const migrate::CopyJobOptions& o) {
  NewJob j;
  j.vm = o.from_path.substr(o.from_path.rfind('/') + 1);
  j.type = "copy";
  j.source_host = o.from_host;
  j.dest_host = o.to_host;
  j.slots = {{o.from_host, LimitClass::kStorage}, {o.to_host, LimitClass::kStorage}};
  j.steps = migrate::copy_job_steps();
  j.params = Json::object().set("options", migrate::to_json(o)).dump();
  return store.create(j);
}

bool resumable(const std::string& type) { return type == "copy" || type == "network"; }

Comparison compare_files(const hosts::Inventory& inv, const std::string& host_a,
                         const std::string& path_a, const std::string& host_b,
                         const std::string& path_b, std::uint64_t chunk_size) {
  std::unique_ptr<LibvirtSite> a = open_site(inv, host_a);
  std::unique_ptr<LibvirtSite> b = open_site(inv, host_b);
  std::unique_ptr<transfer::Endpoint> ea = a->site.open(path_a);
  std::unique_ptr<transfer::Endpoint> eb = b->site.open(path_b);
  for (auto* e : {ea.get(), eb.get()})
    if (!e->exists())
      throw Error(ErrorCode::kNotFound, fmt::format("there is no file {}", e->describe()));
  return {transfer::verify(*ea, *eb, chunk_size), ea->describe(), eb->describe(), chunk_size};
}

namespace {

migrate::Result recover_one(JobStore& store, const Job& job, const hosts::Inventory& inv,
                            StoreContext& ctx) {
  (void)store;
  Json params = Json::parse(job.params);
  migrate::Result r;
  if (is_live_migration(job.type)) {
    hosts::LibvirtHost src = open_host(inv, job.source_host);
    hosts::LibvirtHost dst = open_host(inv, job.dest_host);
    r = migrate::recover_live_migration(src, dst, job.state_data, ctx);
  } else if (job.type == "qsm" || job.type == "quick") {
    std::unique_ptr<LibvirtSite> src = open_site(inv, job.source_host);
    std::unique_ptr<LibvirtSite> dst = open_site(inv, job.dest_host);
    r = job.type == "qsm" ? migrate::recover_qsm(src->site, dst->site, job.state_data, ctx)
                          : migrate::recover_quick(src->site, dst->site, job.state_data, ctx);
  } else {
    std::unique_ptr<guest::Guest> g = open_guest(spec_from(params.get("guest")), inv);
    r = migrate::recover_live_storage(*g, job.state_data, ctx);
  }
  return r;
}

}  // namespace

namespace {

// Queued jobs whose waiting process died: nobody would ever start them.
void cancel_orphans(JobStore& store, std::vector<std::string>& lines) {
  const std::string msg =
      "the vmshift process that waited to start it died while it was queued; nothing was changed";
  for (std::int64_t id : store.orphaned()) {
    if (!store.cancel_orphan(id, msg)) continue;  // a live process waits for it again
    Job job = store.get(id);
    lines.push_back(fmt::format("job {} ({} of {}) cancelled: {}", id, job.type, job.vm, msg));
  }
}

}  // namespace

std::vector<std::string> recover_stale_jobs(JobStore& store, const hosts::Inventory& inv) {
  std::vector<std::string> lines;
  for (const Job& job : store.stale()) {
    if (!store.take_over(job.id)) continue;
    // This process holds the lease now, while the recovery runs.
    Heartbeat heartbeat(store.path(), job.id);
    if (job.state == JobState::kQueued) {
      std::string msg =
          "its vmshift process died while the job waited for a slot; nothing was changed";
      store.finish(job.id, JobState::kCancelled, msg);
      lines.push_back(fmt::format("job {} ({} of {}): {}", job.id, job.type, job.vm, msg));
      continue;
    }
    if (job.type == "copy" || job.type == "network") {
      // Nothing to undo: the copy's journal lets it resume.
      std::string msg = fmt::format(
          "its vmshift process died after {} were copied; the source is unchanged; `vmshift jobs "
          "resume {}` continues the {}",
          copied_so_far(job.state_data), job.id, job.type == "copy" ? "copy" : "migration");
      store.finish(job.id, JobState::kFailed, msg);
      lines.push_back(fmt::format("job {} ({} of {}): {}", job.id, job.type, job.vm, msg));
      continue;
    }
    if (job.state_data.empty() || job.state_data == "{}") {
      std::string msg = "its vmshift process died before it changed anything; nothing was changed";
      store.finish(job.id, JobState::kRolledBack, msg);
      lines.push_back(fmt::format("job {} ({} of {}): {}", job.id, job.type, job.vm, msg));
      continue;
    }
    try {
      Json params = Json::parse(job.params);
      Observer quiet;
      StoreContext ctx(store, job.id, steps_of(job.type), quiet, nullptr);
      ctx.never_undo_for_store();
      migrate::Result r = recover_one(store, job, inv, ctx);
      if (!ctx.finish(job_state(r.outcome), r.message, Deadline::after(kFinishDeadline)))
        r.message += fmt::format(" (the job store could not record it: {})", ctx.store_problem());
      lines.push_back(fmt::format("job {} ({} of {}) recovered, {}: {}", job.id, job.type, job.vm,
                                  to_string(job_state(r.outcome)), r.message));
    } catch (const Error& e) {
      // Not finished: the next vmshift command tries again.
      lines.push_back(
          fmt::format("job {} ({} of {}): its vmshift process died and recovery "
                      "cannot proceed now: {}; it will be tried again",
                      job.id, job.type, job.vm, e.what()));
    }
  }
  cancel_orphans(store, lines);
  return lines;
}

}  // namespace vmshift::core
