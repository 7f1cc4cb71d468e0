#include "core/job_create.h"

#include <stdlib.h>

#include <cstdlib>

#include "base/json.h"
#include "hosts/domain.h"
#include "hosts/libvirt.h"

namespace vmshift::core {

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

std::vector<Slot> slots_for(const migrate::JobKind& kind, const std::string& source,
                            const std::string& dest) {
  std::vector<Slot> slots;
  for (const migrate::SlotNeed& n : kind.slots)
    slots.push_back({n.side == migrate::Side::kSource ? source : dest,
                     n.limit == migrate::Limit::kLive ? LimitClass::kLive : LimitClass::kStorage});
  return slots;
}

std::vector<Slot> slots_for(const std::string& type, const std::string& source,
                            const std::string& dest) {
  return slots_for(migrate::job_kind(migrate::parse_kind(type)), source, dest);
}

std::int64_t create_live_storage_job(JobStore& store, const GuestSpec& spec,
                                     const std::string& vm_uuid,
                                     const migrate::LiveStorageOptions& options) {
  const migrate::JobKind& kind = migrate::job_kind(migrate::Kind::kLiveStorage);
  NewJob j;
  j.vm = spec.vm.empty() ? spec.socket : spec.vm;
  j.vm_uuid = vm_uuid;
  j.type = kind.name();
  j.source_host = spec.host;
  j.dest_host = spec.host;
  j.slots = slots_for(kind, spec.host, spec.host);
  j.steps = kind.steps;
  j.params = migrate::live_storage_params(spec, options).dump();
  return store.create(j);
}

std::int64_t create_live_migration_job(JobStore& store, const std::string& type,
                                       const migrate::LiveMigrationPlan& plan,
                                       const std::string& vm_uuid,
                                       const migrate::LiveMigrationOptions& options) {
  const migrate::JobKind& kind = migrate::job_kind(migrate::parse_kind(type));
  NewJob j;
  j.vm = plan.vm;
  j.vm_uuid = vm_uuid;
  j.type = kind.name();
  j.source_host = plan.source_host;
  j.dest_host = plan.dest_host;
  j.slots = slots_for(kind, plan.source_host, plan.dest_host);
  j.steps = kind.steps;
  migrate::LiveMigrationOptions o = options;
  o.type = migrate::parse_kind(j.type);  // a rerun after a wait plans the same type
  j.params = migrate::migration_params(plan, o).dump();
  return store.create(j);
}

std::int64_t create_copy_job(JobStore& store, const migrate::CopyJobOptions& o) {
  const migrate::JobKind& kind = migrate::job_kind(migrate::Kind::kCopy);
  NewJob j;
  j.vm = o.from_path.substr(o.from_path.rfind('/') + 1);
  j.type = kind.name();
  j.source_host = o.from_host;
  j.dest_host = o.to_host;
  j.slots = slots_for(kind, o.from_host, o.to_host);
  j.steps = kind.steps;
  j.params = migrate::copy_params(o).dump();
  return store.create(j);
}

}  // namespace vmshift::core
