#include "hosts/libvirt_host.h"

#include <fmt/format.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/bandwidth.h"
#include "base/format.h"
#include "base/log.h"
#include "base/poll_until.h"
#include "hosts/block_job.h"
#include "hosts/xml.h"

namespace vmshift::hosts {
namespace {

void fill_params(const MigrationRequest& r, TypedParams& p) {
  if (!r.migrate_uri.empty()) p.add(VIR_MIGRATE_PARAM_URI, r.migrate_uri);
  if (!r.dest_xml.empty()) p.add(VIR_MIGRATE_PARAM_DEST_XML, r.dest_xml);
  if (!r.persist_xml.empty()) p.add(VIR_MIGRATE_PARAM_PERSIST_XML, r.persist_xml);
  for (const auto& d : r.copy_disks) p.add(VIR_MIGRATE_PARAM_MIGRATE_DISKS, d);
  if (r.bandwidth > 0)  // libvirt takes whole MiB/s only: refused, never rounded
    p.add(VIR_MIGRATE_PARAM_BANDWIDTH,
          static_cast<unsigned long long>(migration_bandwidth_mib(r.bandwidth)));
  if (!r.compression.empty()) p.add(VIR_MIGRATE_PARAM_COMPRESSION, r.compression);
  if (r.parallel > 0) p.add(VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS, r.parallel);
}

// The shared state of a migration and the thread that runs it; the thread
// holds its own reference, so it may outlive the LiveMigration object.
struct Shared {
  Connection conn;
  Domain dom;
  std::string vm;
  std::string host;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<std::string> result;
  bool postcopy = false;
};

class LibvirtMigration : public LiveMigration {
 public:
  LibvirtMigration(std::shared_ptr<Shared> s, const MigrationRequest& r)
      : s_(std::move(s)), max_downtime_(r.max_downtime) {
    std::string dconnuri = r.dest_peer_uri;
    unsigned int flags = migration_flags(r);
    auto params = std::make_shared<TypedParams>();
    fill_params(r, *params);
    std::thread([s = s_, params, dconnuri, flags] {
      log::Trace trace("libvirt", "virDomainMigrateToURI3",
                       "vm='{}' host='{}' dconnuri='{}' flags={:#x} {}", s->vm, s->host, dconnuri,
                       flags, fmt::join(params->describe(), " "));
      int rc = virDomainMigrateToURI3(s->dom.get(), dconnuri.c_str(), params->get(),
                                      static_cast<unsigned int>(params->size()), flags);
      std::string why;
      if (rc != 0) {
        virErrorPtr e = virGetLastError();
        why = e != nullptr && e->message != nullptr ? e->message : "libvirt gave no reason";
        virResetLastError();
      }
      std::lock_guard lock(s->mu);
      s->result = why;
      s->cv.notify_all();
    }).detach();
  }

  ~LibvirtMigration() override {
    // A migration still running when its owner goes is cancelled; the
    // thread finishes on its own (it holds what it needs).
    if (!result()) {
      abort();
      wait(Deadline::after(std::chrono::seconds(30)));
    }
  }

  MigrationStats stats() override {
    MigrationStats st;
    TypedParams p;
    int type = VIR_DOMAIN_JOB_NONE;
    log::Trace trace("libvirt", "virDomainGetJobStats", "vm='{}' host='{}'", s_->vm, s_->host);
    if (virDomainGetJobStats(s_->dom.get(), &type, p.out_params(), p.out_size(), 0) != 0) {
      virResetLastError();  // the domain may be gone from the source already
      return st;
    }
    st.active = type == VIR_DOMAIN_JOB_BOUNDED || type == VIR_DOMAIN_JOB_UNBOUNDED;
    st.elapsed_ms = p.ull(VIR_DOMAIN_JOB_TIME_ELAPSED);
    st.memory_total = p.ull(VIR_DOMAIN_JOB_MEMORY_TOTAL);
    st.memory_processed = p.ull(VIR_DOMAIN_JOB_MEMORY_PROCESSED);
    st.memory_remaining = p.ull(VIR_DOMAIN_JOB_MEMORY_REMAINING);
    st.memory_bps = p.ull(VIR_DOMAIN_JOB_MEMORY_BPS);
    st.disk_total = p.ull(VIR_DOMAIN_JOB_DISK_TOTAL);
    st.disk_processed = p.ull(VIR_DOMAIN_JOB_DISK_PROCESSED);
    st.disk_remaining = p.ull(VIR_DOMAIN_JOB_DISK_REMAINING);
    st.disk_bps = p.ull(VIR_DOMAIN_JOB_DISK_BPS);
    std::uint64_t page = p.ull(VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);
    st.dirty_bytes_per_s = p.ull(VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE) * (page > 0 ? page : 4096);
    st.iteration = p.ull(VIR_DOMAIN_JOB_MEMORY_ITERATION);
    st.throttle_percent = p.ull(VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE);
    {
      std::lock_guard lock(s_->mu);
      st.postcopy = s_->postcopy;
    }
    if (st.active && !downtime_set_ && max_downtime_.count() > 0) {
      // Set once the job runs: libvirt applies it to the running migration.
      log::Trace downtime_trace("libvirt", "virDomainMigrateSetMaxDowntime",
                                "vm='{}' host='{}' downtime={} ms", s_->vm, s_->host,
                                max_downtime_.count());
      if (virDomainMigrateSetMaxDowntime(
              s_->dom.get(), static_cast<unsigned long long>(max_downtime_.count()), 0) != 0) {
        virErrorPtr e = virGetLastError();
        log::warn("migrate", "cannot set the maximum downtime of {}: {}", s_->vm,
                  e != nullptr && e->message != nullptr ? e->message : "?");
        virResetLastError();
      }
      downtime_set_ = true;
    }
    return st;
  }

  std::optional<std::string> result() override {
    std::lock_guard lock(s_->mu);
    return s_->result;
  }

  std::optional<std::string> wait(Deadline deadline) override {
    std::unique_lock lock(s_->mu);
    s_->cv.wait_until(lock, deadline.time_point(), [&] { return s_->result.has_value(); });
    return s_->result;
  }

  void abort() override {
    log::Trace trace("libvirt", "virDomainAbortJob", "vm='{}' host='{}'", s_->vm, s_->host);
    if (virDomainAbortJob(s_->dom.get()) != 0) {
      // No job (it ended meanwhile) is not an error here.
      virResetLastError();
    }
  }

  void switch_to_postcopy() override {
    log::Trace trace("libvirt", "virDomainMigrateStartPostCopy", "vm='{}' host='{}'", s_->vm,
                     s_->host);
    if (virDomainMigrateStartPostCopy(s_->dom.get(), 0) != 0)
      throw_libvirt(fmt::format("cannot switch the migration of '{}' to post-copy", s_->vm));
    std::lock_guard lock(s_->mu);
    s_->postcopy = true;
  }

  void suspend_source() override {
    log::Trace trace("libvirt", "virDomainSuspend", "vm='{}' host='{}'", s_->vm, s_->host);
    if (virDomainSuspend(s_->dom.get()) != 0)
      throw_libvirt(fmt::format("cannot pause '{}' on host '{}'", s_->vm, s_->host));
  }

 private:
  std::shared_ptr<Shared> s_;
  std::chrono::milliseconds max_downtime_;
  bool downtime_set_ = false;
};

}  // namespace

std::string MigrationStats::phase() const {
  if (postcopy) return "post-copy";
  if (disk_total > 0 && memory_processed == 0 && iteration == 0) return "disks";
  return "memory";
}

unsigned int migration_flags(const MigrationRequest& r) {
  unsigned int f = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
                   VIR_MIGRATE_UNDEFINE_SOURCE | VIR_MIGRATE_ABORT_ON_ERROR;
  if (!r.copy_disks.empty())
    f |= r.copy_top_only ? VIR_MIGRATE_NON_SHARED_INC : VIR_MIGRATE_NON_SHARED_DISK;
  if (r.auto_converge) f |= VIR_MIGRATE_AUTO_CONVERGE;
  if (r.postcopy) f |= VIR_MIGRATE_POSTCOPY;
  if (r.tls) f |= VIR_MIGRATE_TLS;
  if (r.shared_storage_vouched) f |= VIR_MIGRATE_UNSAFE;
  if (r.parallel > 0) f |= VIR_MIGRATE_PARALLEL;
  if (!r.compression.empty()) f |= VIR_MIGRATE_COMPRESSED;
  return f;
}

std::uint64_t migration_bandwidth_mib(std::uint64_t bytes_per_s) {
  if (auto mib = whole_mib_per_s(bytes_per_s)) return *mib;
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("a migration bandwidth of {} MiB/s cannot be honoured: libvirt limits a "
                          "migration in whole MiB/s only (give a whole number)",
                          static_cast<double>(bytes_per_s) / static_cast<double>(kBytesPerMiB)));
}

std::vector<std::string> migration_params(const MigrationRequest& r) {
  TypedParams p;
  fill_params(r, p);
  return p.describe();
}

LibvirtHost::LibvirtHost(Connection conn) : conn_(conn), storage_(conn) {}

Domain LibvirtHost::find(const std::string& vm) {
  log::Trace trace("libvirt", "virDomainLookupByName", "vm='{}' host='{}'", vm, conn_.host());
  virDomainPtr d = virDomainLookupByName(conn_.get(), vm.c_str());
  if (d == nullptr) {
    virErrorPtr e = virGetLastError();
    if (e != nullptr && e->code == VIR_ERR_NO_DOMAIN) {
      virResetLastError();
      return Domain();
    }
    throw_libvirt(fmt::format("cannot look up VM '{}' on host '{}'", vm, conn_.host()));
  }
  return Domain(d);
}

std::optional<std::string> LibvirtHost::vm_state(const std::string& vm) {
  Domain d = find(vm);
  if (!d) return std::nullopt;
  try {
    return domain_state(d.get());
  } catch (const Error&) {
    // Gone between the lookup and the question (e.g. the destination side
    // of a cancelled migration): not defined here any more.
    if (!find(vm)) return std::nullopt;
    throw;
  }
}

bool LibvirtHost::vm_persistent(const std::string& vm) {
  Domain d = find(vm);
  return d && virDomainIsPersistent(d.get()) == 1;
}

std::map<std::string, std::string> LibvirtHost::vm_disks(const std::string& vm, bool persistent) {
  Domain d = conn_.domain(vm);
  Xml xml = Xml::parse(domain_xml(d.get(), persistent ? VIR_DOMAIN_XML_INACTIVE : 0));
  std::map<std::string, std::string> out;
  int n = xml.count("/domain/devices/disk[@device='disk']");
  for (int i = 1; i <= n; ++i) {
    std::string x = fmt::format("/domain/devices/disk[@device='disk'][{}]", i);
    std::string path = xml.text(x + "/source/@file");
    if (path.empty()) path = xml.text(x + "/source/@dev");
    out[xml.text(x + "/target/@dev")] = path;
  }
  return out;
}

std::string LibvirtHost::vm_xml(const std::string& vm, bool persistent) {
  Domain d = conn_.domain(vm);
  return domain_xml(d.get(), VIR_DOMAIN_XML_MIGRATABLE | VIR_DOMAIN_XML_SECURE |
                                 (persistent ? VIR_DOMAIN_XML_INACTIVE : 0));
}

bool LibvirtHost::vm_job_active(const std::string& vm) {
  Domain d = find(vm);
  if (!d) return false;
  virDomainJobInfo info{};
  log::Trace trace("libvirt", "virDomainGetJobInfo", "vm='{}' host='{}'", vm, conn_.host());
  if (virDomainGetJobInfo(d.get(), &info) != 0) {
    virResetLastError();
    return false;
  }
  return info.type == VIR_DOMAIN_JOB_BOUNDED || info.type == VIR_DOMAIN_JOB_UNBOUNDED;
}

bool LibvirtHost::abort_job(const std::string& vm) {
  Domain d = find(vm);
  if (!d) return false;
  log::Trace trace("libvirt", "virDomainAbortJob", "vm='{}' host='{}'", vm, conn_.host());
  if (virDomainAbortJob(d.get()) != 0) {
    virResetLastError();
    return false;
  }
  return true;
}

std::optional<CompletedMigration> LibvirtHost::completed_migration(const std::string& vm) {
  Domain d = find(vm);
  if (!d) return std::nullopt;
  TypedParams p;
  int type = VIR_DOMAIN_JOB_NONE;
  log::Trace trace("libvirt", "virDomainGetJobStats", "vm='{}' host='{}' flags=COMPLETED", vm,
                   conn_.host());
  if (virDomainGetJobStats(d.get(), &type, p.out_params(), p.out_size(),
                           VIR_DOMAIN_JOB_STATS_COMPLETED) != 0) {
    virResetLastError();
    return std::nullopt;
  }
  if (type == VIR_DOMAIN_JOB_NONE) return std::nullopt;
  CompletedMigration c;
  if (p.has(VIR_DOMAIN_JOB_DOWNTIME))
    c.downtime_ms = static_cast<std::int64_t>(p.ull(VIR_DOMAIN_JOB_DOWNTIME));
  c.elapsed_ms = p.ull(VIR_DOMAIN_JOB_TIME_ELAPSED);
  c.data_total = p.ull(VIR_DOMAIN_JOB_DATA_TOTAL);
  c.data_processed = p.ull(VIR_DOMAIN_JOB_DATA_PROCESSED);
  c.memory_bps = p.ull(VIR_DOMAIN_JOB_MEMORY_BPS);
  c.iteration = p.ull(VIR_DOMAIN_JOB_MEMORY_ITERATION);
  return c;
}

void LibvirtHost::undefine(const std::string& vm) {
  Domain d = find(vm);
  if (!d) return;
  if (domain_active(d.get()))
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("VM '{}' runs on host '{}': not removing it", vm, conn_.host()));
  // The definition only: the NVRAM file and the vTPM's state stay (they
  // were never copied); a managed-save image or snapshot metadata makes
  // libvirt refuse, which the caller reports, rather than drop them.
  log::Trace trace("libvirt", "virDomainUndefineFlags",
                   "vm='{}' host='{}' flags=KEEP_NVRAM|KEEP_TPM", vm, conn_.host());
  if (virDomainUndefineFlags(d.get(),
                             VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_KEEP_TPM) != 0)
    throw_libvirt(fmt::format("cannot undefine VM '{}' on host '{}'", vm, conn_.host()));
}

std::unique_ptr<LiveMigration> LibvirtHost::start_migration(const std::string& vm,
                                                            const MigrationRequest& request) {
  auto s = std::make_shared<Shared>();
  s->conn = conn_;
  s->dom = conn_.domain(vm);
  s->vm = vm;
  s->host = conn_.host();
  if (!domain_active(s->dom.get()))
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("VM '{}' is not running on host '{}'", vm, conn_.host()));
  return std::make_unique<LibvirtMigration>(std::move(s), request);
}

void LibvirtHost::snapshot_to_overlays(const std::string& vm,
                                       const std::map<std::string, std::string>& overlays) {
  Domain d = conn_.domain(vm);
  std::string disks;
  for (const auto& [target, path] : vm_disks(vm, false)) {
    (void)path;
    auto it = overlays.find(target);
    if (it == overlays.end())
      disks += fmt::format("<disk name='{}' snapshot='no'/>", xml_escape(target));
    else
      disks += fmt::format(
          "<disk name='{}' snapshot='external'><driver type='qcow2'/><source file='{}'/></disk>",
          xml_escape(target), xml_escape(it->second));
  }
  std::string xml = fmt::format("<domainsnapshot><disks>{}</disks></domainsnapshot>", disks);
  log::Trace trace("libvirt", "virDomainSnapshotCreateXML",
                   "vm='{}' host='{}' overlays={} flags=DISK_ONLY|NO_METADATA|ATOMIC", vm,
                   conn_.host(), overlays.size());
  Snapshot snap(virDomainSnapshotCreateXML(d.get(), xml.c_str(),
                                           VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY |
                                               VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA |
                                               VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC));
  if (snap == nullptr)
    throw_libvirt(
        fmt::format("cannot snapshot the disks of VM '{}' on host '{}'", vm, conn_.host()));
}

void LibvirtHost::commit_top(const std::string& vm, const std::string& target, Deadline deadline) {
  Domain d = conn_.domain(vm);
  std::string who = fmt::format("VM '{}' on host '{}'", vm, conn_.host());
  log::Trace trace("libvirt", "virDomainBlockCommit",
                   "vm='{}' host='{}' disk={} flags=ACTIVE deadline={}", vm, conn_.host(), target,
                   human_duration(deadline.remaining()));
  if (virDomainBlockCommit(d.get(), target.c_str(), nullptr, nullptr, 0,
                           VIR_DOMAIN_BLOCK_COMMIT_ACTIVE) != 0)
    throw_libvirt(
        fmt::format("cannot merge the top layer of disk {} of VM '{}' on host "
                    "'{}'",
                    target, vm, conn_.host()));
  bool ready = poll_until(deadline, std::chrono::milliseconds(100), [&] {
    BlockJobStatus st =
        block_job_status(d.get(), who, target, Deadline::after(std::chrono::seconds(30)));
    if (!st.active)
      throw Error(
          ErrorCode::kCommandFailed,
          fmt::format("the merge of disk {} of VM '{}' ended before its switch", target, vm));
    return st.ready;
  });
  if (!ready) {
    abort_block_job(d.get(), who, target, Deadline::after(std::chrono::seconds(60)));
    throw Error(ErrorCode::kTimeout,
                fmt::format("the merge of disk {} of VM '{}' was not done in time; it was "
                            "cancelled (the disk still runs on its top layer)",
                            target, vm));
  }
  pivot_block_job(d.get(), who, target, deadline);
}

void LibvirtHost::save_state(const std::string& vm, const std::string& path) {
  Domain d = conn_.domain(vm);
  log::Trace trace("libvirt", "virDomainSaveFlags", "vm='{}' host='{}' path='{}' flags=RUNNING", vm,
                   conn_.host(), path);
  if (virDomainSaveFlags(d.get(), path.c_str(), nullptr, VIR_DOMAIN_SAVE_RUNNING) != 0)
    throw_libvirt(fmt::format("cannot save the state of VM '{}' on host '{}' to '{}'", vm,
                              conn_.host(), path));
}

std::string LibvirtHost::saved_xml(const std::string& path) {
  log::Trace trace("libvirt", "virDomainSaveImageGetXMLDesc", "host='{}' path='{}'", conn_.host(),
                   path);
  std::optional<std::string> x = take_string(
      virDomainSaveImageGetXMLDesc(conn_.get(), path.c_str(), VIR_DOMAIN_SAVE_IMAGE_XML_SECURE));
  if (!x)
    throw_libvirt(fmt::format("cannot read the saved state '{}' on host '{}'", path, conn_.host()));
  return *x;
}

void LibvirtHost::restore_state(const std::string& path, const std::string& xml, bool paused) {
  log::Trace trace("libvirt", "virDomainRestoreFlags", "host='{}' path='{}' xml={} B paused={}",
                   conn_.host(), path, xml.size(), paused);
  if (virDomainRestoreFlags(conn_.get(), path.c_str(), xml.empty() ? nullptr : xml.c_str(),
                            paused ? VIR_DOMAIN_SAVE_PAUSED : VIR_DOMAIN_SAVE_RUNNING) != 0)
    throw_libvirt(
        fmt::format("cannot restore the saved state '{}' on host '{}'", path, conn_.host()));
}

std::optional<std::string> LibvirtHost::managed_save_path(const std::string& vm) {
  Domain d = find(vm);
  if (!d) return std::nullopt;
  log::Trace trace("libvirt", "virDomainHasManagedSaveImage", "vm='{}' host='{}'", vm,
                   conn_.host());
  int r = virDomainHasManagedSaveImage(d.get(), 0);
  if (r < 0) throw_libvirt(fmt::format("cannot check VM '{}' for a saved state", vm));
  if (r == 0) return std::nullopt;
  return fmt::format("/var/lib/libvirt/qemu/save/{}.save", vm);
}

void LibvirtHost::managed_save(const std::string& vm) {
  Domain d = conn_.domain(vm);
  log::Trace trace("libvirt", "virDomainManagedSave", "vm='{}' host='{}'", vm, conn_.host());
  if (virDomainManagedSave(d.get(), 0) != 0)
    throw_libvirt(fmt::format("cannot save VM '{}' on host '{}'", vm, conn_.host()));
}

void LibvirtHost::define(const std::string& xml) {
  log::Trace trace("libvirt", "virDomainDefineXML", "host='{}' xml={} B", conn_.host(), xml.size());
  Domain d(virDomainDefineXML(conn_.get(), xml.c_str()));
  if (!d) throw_libvirt(fmt::format("cannot define the VM on host '{}'", conn_.host()));
}

void LibvirtHost::start(const std::string& vm) {
  Domain d = conn_.domain(vm);
  log::Trace trace("libvirt", "virDomainCreate", "vm='{}' host='{}'", vm, conn_.host());
  if (virDomainCreate(d.get()) != 0)
    throw_libvirt(fmt::format("cannot start VM '{}' on host '{}'", vm, conn_.host()));
}

void LibvirtHost::destroy(const std::string& vm) {
  Domain d = find(vm);
  if (!d || !domain_active(d.get())) return;
  log::Trace trace("libvirt", "virDomainDestroy", "vm='{}' host='{}'", vm, conn_.host());
  if (virDomainDestroy(d.get()) != 0)
    throw_libvirt(fmt::format("cannot stop VM '{}' on host '{}'", vm, conn_.host()));
}

}  // namespace vmshift::hosts
