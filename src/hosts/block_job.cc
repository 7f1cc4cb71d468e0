#include "hosts/block_job.h"

#include <fmt/format.h>

#include <memory>

#include "base/error.h"
#include "base/format.h"
#include "base/log.h"
#include "base/poll_until.h"
#include "hosts/xml.h"

namespace vmshift::hosts {
namespace {

std::string disk_xpath(const std::string& target) {
  return fmt::format("/domain/devices/disk[@device='disk'][target/@dev='{}']", target);
}

// A reference of its own to the domain, for a call that may outlive the
// caller (call_within).
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
  log::Trace trace("libvirt", "virDomainGetBlockJobInfo", "vm='{}' disk={} flags={:#x} deadline={}",
                   domain_name(d), target, flags, human_duration(deadline.remaining()));
  int r = call_within(deadline, what, [dom, target, flags, info] {
    return virDomainGetBlockJobInfo(dom.get(), target.c_str(), info.get(), flags);
  });
  if (out != nullptr) *out = *info;
  return r;
}

}  // namespace

BlockJobStatus block_job_status(virDomainPtr dom, const std::string& vm, const std::string& target,
                                Deadline deadline) {
  BlockJobStatus s;
  virDomainBlockJobInfo info{};
  int r =
      block_job_info(dom, target, VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES, deadline,
                     fmt::format("cannot read the copy job of disk {} of {}", target, vm), &info);
  if (r == 0) return s;
  s.active = true;
  s.done = info.cur;
  s.total = info.end;
  // libvirt marks a mirror that reached sync with <mirror ready='yes'>.
  Xml xml = Xml::parse(domain_xml(dom));
  s.ready = xml.text(disk_xpath(target) + "/mirror/@ready") == "yes";
  return s;
}

std::chrono::milliseconds pivot_block_job(virDomainPtr d, const std::string& vm,
                                          const std::string& target, Deadline deadline) {
  // Asynchronous, and every call bounded, so that the deadline holds even
  // when QEMU stops answering: the switch is done when the copy job is
  // gone and the disk runs on another file than before.
  auto start = std::chrono::steady_clock::now();
  std::string before = disk_source(d, target);
  auto dom = shared_ref(d);
  try {
    log::Trace trace("libvirt", "virDomainBlockJobAbort",
                     "{} disk={} flags=PIVOT|ASYNC deadline={}", vm, target,
                     human_duration(deadline.remaining()));
    call_within(deadline, fmt::format("cannot switch disk {} of {} to its copy", target, vm),
                [dom, target] {
                  return virDomainBlockJobAbort(
                      dom.get(), target.c_str(),
                      VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT | VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC);
                });
    std::string follow = fmt::format("cannot follow the switch of disk {} of {}", target, vm);
    if (!poll_until(deadline, std::chrono::milliseconds(20),
                    [&] { return block_job_info(d, target, 0, deadline, follow, nullptr) == 0; }))
      throw Error(ErrorCode::kTimeout, "its copy job is still ending");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kTimeout) throw;
    // Asked of QEMU, the switch may still happen.
    throw Error(ErrorCode::kTimeout,
                fmt::format("the switch of disk {} of {} to its copy did not finish in time ({}); "
                            "the disk was on '{}' when it began",
                            target, vm, e.what(), before));
  }
  if (disk_source(d, target) == before)
    throw Error(ErrorCode::kCommandFailed,
                fmt::format("the switch of disk {} of {} to its copy failed: the disk still "
                            "runs on '{}'",
                            target, vm, before));
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

void set_block_job_speed(virDomainPtr d, const std::string& target, std::uint64_t bps,
                         Deadline deadline) {
  auto dom = shared_ref(d);
  log::Trace trace("libvirt", "virDomainBlockJobSetSpeed", "vm='{}' disk={} bandwidth={} B/s",
                   domain_name(d), target, bps);
  call_within(deadline, fmt::format("cannot change the copy speed of disk {}", target),
              [dom, target, bps] {
                return virDomainBlockJobSetSpeed(dom.get(), target.c_str(), bps,
                                                 VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES);
              });
}

void abort_block_job(virDomainPtr d, const std::string& vm, const std::string& target,
                     Deadline deadline) {
  std::string what = fmt::format("cannot cancel the copy of disk {} of {}", target, vm);
  int r = 0;
  try {
    r = block_job_info(d, target, 0, deadline, what, nullptr);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kTimeout) throw;
    return;  // no job to end
  }
  if (r == 0) return;
  auto dom = shared_ref(d);
  log::Trace trace("libvirt", "virDomainBlockJobAbort", "{} disk={} flags=0 deadline={}", vm,
                   target, human_duration(deadline.remaining()));
  call_within(deadline, what,
              [dom, target] { return virDomainBlockJobAbort(dom.get(), target.c_str(), 0); });
  // The abort is synchronous for copy jobs; confirm, polling with the deadline.
  if (!poll_until(deadline, std::chrono::milliseconds(50),
                  [&] { return block_job_info(d, target, 0, deadline, what, nullptr) <= 0; }))
    throw Error(
        ErrorCode::kTimeout,
        fmt::format("the copy job of disk {} of {} did not end after cancelling", target, vm));
}

std::string disk_source(virDomainPtr dom, const std::string& target) {
  Xml xml = Xml::parse(domain_xml(dom));
  return xml.text(disk_xpath(target) + "/source/@file");
}

}  // namespace vmshift::hosts
