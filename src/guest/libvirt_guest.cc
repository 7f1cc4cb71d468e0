#include "guest/libvirt_guest.h"

#include <fmt/format.h>

#include "base/log.h"
#include "hosts/block_job.h"
#include "hosts/xml.h"

namespace vmshift::guest {
namespace {

std::string disk_xpath(const std::string& target) {
  return fmt::format("/domain/devices/disk[@device='disk'][target/@dev='{}']", target);
}

// Block-job calls go through QEMU's monitor, which stops answering when
// QEMU's main loop blocks on storage that hangs; each is bounded.
constexpr auto kAnswerTime = std::chrono::seconds(30);

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
      log::Trace trace("libvirt", "virDomainGetBlockInfo", "vm='{}' host='{}' disk={}", name_,
                       conn_.host(), info.target);
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
  log::Trace trace("libvirt", "virDomainBlockCopy",
                   "vm='{}' host='{}' disk={} dest='{}' format={} bandwidth={} B/s flags={:#x}",
                   name_, conn_.host(), r.target, r.dest, r.format, r.bandwidth, flags);
  if (virDomainBlockCopy(dom_.get(), r.target.c_str(), dest_xml.c_str(), params, nparams, flags) !=
      0)
    hosts::throw_libvirt(
        fmt::format("cannot start copying disk {} of {} to '{}'", r.target, describe(), r.dest));
}

CopyStatus LibvirtGuest::copy_status(const std::string& target) {
  hosts::BlockJobStatus j =
      hosts::block_job_status(dom_.get(), describe(), target, Deadline::after(kAnswerTime));
  return CopyStatus{.active = j.active, .ready = j.ready, .done = j.done, .total = j.total};
}

void LibvirtGuest::set_copy_bandwidth(const std::string& target, std::uint64_t bps) {
  hosts::set_block_job_speed(dom_.get(), target, bps, Deadline::after(kAnswerTime));
}

std::chrono::milliseconds LibvirtGuest::pivot(const std::string& target, Deadline deadline) {
  return hosts::pivot_block_job(dom_.get(), describe(), target, deadline);
}

void LibvirtGuest::abort_copy(const std::string& target, Deadline deadline) {
  hosts::abort_block_job(dom_.get(), describe(), target, deadline);
}

std::string LibvirtGuest::active_path(const std::string& target) {
  return hosts::disk_source(dom_.get(), target);
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
  log::Trace trace("libvirt", "virDomainDefineXML", "vm='{}' host='{}' xml={} B", name_,
                   conn_.host(), text.size());
  hosts::Domain d(virDomainDefineXML(conn_.get(), text.c_str()));
  if (!d)
    hosts::throw_libvirt(fmt::format("cannot update the persistent definition of {}", describe()));
  return "the persistent definition was updated to the new paths";
}

}  // namespace vmshift::guest
