#include "guest/libvirt_guest.h"

#include <fmt/format.h>

#include <thread>

#include "hosts/xml.h"

namespace vmshift::guest {
namespace {

std::string disk_xpath(const std::string& target) {
  return fmt::format("/domain/devices/disk[@device='disk'][target/@dev='{}']", target);
}

// Block-job calls go through QEMU's monitor, which stops answering when
// QEMU's main loop blocks on storage that hangs; each is bounded.
constexpr auto kAnswerTime = std::chrono::seconds(30);

// A reference of its own to the domain, for a call that may outlive the
// caller (hosts::call_within).
std::shared_ptr<virDomain> shared_ref(virDomainPtr d) {
  virDomainRef(d);
  return {d, virDomainFree};
}

// virDomainGetBlockJobInfo by the deadline: 1 while the disk has a block
// job (its figures in *out), 0 when it has none.
int block_job_info(virDomainPtr d, const std::string& target, unsigned int flags, Deadline deadline,
                   std::string_view what, virDomainBlockJobInfo* out) {
  auto dom = shared_ref(d);
  auto info = std::make_shared<virDomainBlockJobInfo>();
  int r = hosts::call_within(deadline, what, [dom, target, flags, info] {
    return virDomainGetBlockJobInfo(dom.get(), target.c_str(), info.get(), flags);
  });
  if (out != nullptr) *out = *info;
  return r;
}

}  // namespace

LibvirtGuest::LibvirtGuest(hosts::Connection conn, const std::string& name)
    : conn_(conn), name_(name), dom_(conn_.domain(name)), storage_(conn) {}

std::string LibvirtGuest::describe() const {
  return fmt::format("VM '{}' on host '{}'", name_, conn_.host());
}

std::string LibvirtGuest::state() { return hosts::domain_state(dom_.get()); }

std::vector<DiskInfo> LibvirtGuest::disks() {
  bool active = hosts::domain_active(dom_.get());
  hosts::Xml xml = hosts::Xml::parse(hosts::domain_xml(dom_.get()));
  std::vector<DiskInfo> out;
  int n = xml.count("/domain/devices/disk");
  for (int i = 1; i <= n; ++i) {
    std::string d = fmt::format("/domain/devices/disk[{}]", i);
    if (xml.text(d + "/@device") != "disk") continue;
    DiskInfo info;
    info.target = xml.text(d + "/target/@dev");
    info.path = xml.text(d + "/source/@file");
    if (info.path.empty()) info.path = xml.text(d + "/source/@dev");
    info.format = xml.text(d + "/driver/@type");
    if (info.format.empty()) info.format = "raw";
    std::string chain = d;
    for (int depth = 0; depth < 64; ++depth) {
      chain += "/backingStore";
      std::string file = xml.text(chain + "/source/@file");
      if (file.empty()) break;
      if (info.backing.empty()) info.backing_format = xml.text(chain + "/format/@type");
      info.backing.push_back(file);
    }
    if (active) {
      virDomainBlockInfo bi{};
      if (virDomainGetBlockInfo(dom_.get(), info.target.c_str(), &bi, 0) != 0)
        hosts::throw_libvirt(fmt::format("cannot size disk {} of {}", info.target, describe()));
      info.capacity = bi.capacity;
      info.allocation = bi.allocation;
    } else if (!info.path.empty()) {
      info.allocation = storage_.allocation(info.path).value_or(0);
    }
    out.push_back(std::move(info));
  }
  return out;
}

void LibvirtGuest::start_copy(const CopyRequest& r) {
  std::string dest_xml =
      fmt::format("<disk type='file'><source file='{}'/><driver type='{}'/></disk>",
                  hosts::xml_escape(r.dest), hosts::xml_escape(r.format));
  virTypedParameter params[1];
  int nparams = 0;
  if (r.bandwidth > 0) {
    virTypedParameter& p = params[nparams++];
    std::snprintf(p.field, VIR_TYPED_PARAM_FIELD_LENGTH, "%s", VIR_DOMAIN_BLOCK_COPY_BANDWIDTH);
    p.type = VIR_TYPED_PARAM_ULLONG;
    p.value.ul = r.bandwidth;
  }
  // A transient job: libvirt refuses block copy on a persistent domain
  // otherwise; persist_paths() updates the definition after the pivot.
  unsigned int flags = VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB;
  if (r.shallow) flags |= VIR_DOMAIN_BLOCK_COPY_SHALLOW;
  if (r.sync_writes) flags |= VIR_DOMAIN_BLOCK_COPY_SYNCHRONOUS_WRITES;
  if (virDomainBlockCopy(dom_.get(), r.target.c_str(), dest_xml.c_str(), params, nparams, flags) !=
      0)
    hosts::throw_libvirt(
        fmt::format("cannot start copying disk {} of {} to '{}'", r.target, describe(), r.dest));
}

CopyStatus LibvirtGuest::copy_status(const std::string& target) {
  CopyStatus s;
  virDomainBlockJobInfo info{};
  int r = block_job_info(
      dom_.get(), target, VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES, Deadline::after(kAnswerTime),
      fmt::format("cannot read the copy job of disk {} of {}", target, describe()), &info);
  if (r == 0) return s;
  s.active = true;
  s.done = info.cur;
  s.total = info.end;
  // libvirt marks a mirror that reached sync with <mirror ready='yes'>.
  hosts::Xml xml = hosts::Xml::parse(hosts::domain_xml(dom_.get()));
  s.ready = xml.text(disk_xpath(target) + "/mirror/@ready") == "yes";
  return s;
}

void LibvirtGuest::set_copy_bandwidth(const std::string& target, std::uint64_t bps) {
  auto dom = shared_ref(dom_.get());
  hosts::call_within(Deadline::after(kAnswerTime),
                     fmt::format("cannot change the copy speed of disk {}", target),
                     [dom, target, bps] {
                       return virDomainBlockJobSetSpeed(dom.get(), target.c_str(), bps,
                                                        VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES);
                     });
}

std::chrono::milliseconds LibvirtGuest::pivot(const std::string& target, Deadline deadline) {
  // Asynchronous, and every call bounded, so that the deadline holds even
  // when QEMU stops answering: the switch is done when the copy job is
  // gone and the disk runs on another file than before.
  auto start = std::chrono::steady_clock::now();
  std::string before = active_path(target);
  auto dom = shared_ref(dom_.get());
  try {
    hosts::call_within(deadline,
                       fmt::format("cannot switch disk {} of {} to its copy", target, describe()),
                       [dom, target] {
                         return virDomainBlockJobAbort(
                             dom.get(), target.c_str(),
                             VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT | VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC);
                       });
    std::string follow =
        fmt::format("cannot follow the switch of disk {} of {}", target, describe());
    while (block_job_info(dom_.get(), target, 0, deadline, follow, nullptr) != 0) {
      if (deadline.expired()) throw Error(ErrorCode::kTimeout, "its copy job is still ending");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kTimeout) throw;
    // Asked of QEMU, the switch may still happen.
    throw Error(ErrorCode::kTimeout,
                fmt::format("the switch of disk {} of {} to its copy did not finish in time ({}); "
                            "the disk was on '{}' when it began",
                            target, describe(), e.what(), before));
  }
  if (active_path(target) == before)
    throw Error(ErrorCode::kCommandFailed,
                fmt::format("the switch of disk {} of {} to its copy failed: the disk still "
                            "runs on '{}'",
                            target, describe(), before));
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

void LibvirtGuest::abort_copy(const std::string& target, Deadline deadline) {
  std::string what = fmt::format("cannot cancel the copy of disk {} of {}", target, describe());
  int r = 0;
  try {
    r = block_job_info(dom_.get(), target, 0, deadline, what, nullptr);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kTimeout) throw;
    return;  // no job to end
  }
  if (r == 0) return;
  auto dom = shared_ref(dom_.get());
  hosts::call_within(deadline, what, [dom, target] {
    return virDomainBlockJobAbort(dom.get(), target.c_str(), 0);
  });
  // The abort is synchronous for copy jobs; confirm, polling with the deadline.
  while (block_job_info(dom_.get(), target, 0, deadline, what, nullptr) > 0) {
    if (deadline.expired())
      throw Error(ErrorCode::kTimeout,
                  fmt::format("the copy job of disk {} of {} did not end after cancelling", target,
                              describe()));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string LibvirtGuest::active_path(const std::string& target) {
  hosts::Xml xml = hosts::Xml::parse(hosts::domain_xml(dom_.get()));
  return xml.text(disk_xpath(target) + "/source/@file");
}

std::string LibvirtGuest::persist_paths(const std::map<std::string, std::string>& paths) {
  if (virDomainIsPersistent(dom_.get()) != 1) return "the VM is transient: nothing to persist";
  hosts::Xml xml = hosts::Xml::parse(
      hosts::domain_xml(dom_.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE));
  bool changed = false;
  for (const auto& [target, path] : paths) {
    std::string d = disk_xpath(target);
    if (xml.text(d + "/source/@file") == path) continue;
    if (xml.set_attribute(d + "/source", "file", path) == 0)
      throw Error(
          ErrorCode::kNotFound,
          fmt::format("the persistent definition of {} has no disk {}", describe(), target));
    // The old backing chain belongs to the old file; libvirt probes the new one.
    xml.remove(d + "/backingStore");
    changed = true;
  }
  if (!changed) return "the persistent definition already uses the new paths";
  std::string text = xml.to_string();
  virDomainPtr d = virDomainDefineXML(conn_.get(), text.c_str());
  if (d == nullptr)
    hosts::throw_libvirt(fmt::format("cannot update the persistent definition of {}", describe()));
  virDomainFree(d);
  return "the persistent definition was updated to the new paths";
}

}  // namespace vmshift::guest
