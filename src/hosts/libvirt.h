// libvirt handles in RAII owners, and libvirt errors in vmshift's error
// vocabulary. The error is copied from virGetLastError() right after the
// failing call (it is thread-local); libvirt's own printing is turned off.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/deadline.h"
#include "base/error.h"

namespace vmshift::hosts {

// Initializes libvirt once per process (and silences its own error
// printing); every entry point that calls libvirt does this first.
void init_libvirt();

// Throws the calling thread's last libvirt error as vmshift::Error:
// "<what>: <libvirt's message>". The code follows libvirt's: no such
// domain/volume/pool -> kNotFound, operation invalid -> kFailedPrecondition,
// RPC/system -> kConnection, anything else -> kCommandFailed.
[[noreturn]] void throw_libvirt(std::string_view what);

// Runs a libvirt call on a thread of its own and waits for it until
// `deadline`. For calls that wait on something libvirt does not bound: a
// QEMU whose monitor stops answering (its main loop can block on storage
// that hangs) holds such a call forever. A call still running at the
// deadline is left to end on its own, `late` (if any) then running on its
// thread, and Error(kTimeout, "<what>: no answer within N s") is thrown.
// `call` must own (copy) everything it uses; it returns libvirt's result,
// and a negative one throws as throw_libvirt would, with libvirt's error
// from the thread that made the call.
int call_within(Deadline deadline, std::string_view what, std::function<int()> call,
                std::function<void()> late = nullptr);

struct DomainFree {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};
struct PoolFree {
  void operator()(virStoragePoolPtr p) const { virStoragePoolFree(p); }
};
struct VolFree {
  void operator()(virStorageVolPtr v) const { virStorageVolFree(v); }
};
struct NetworkFree {
  void operator()(virNetworkPtr n) const { virNetworkFree(n); }
};
struct InterfaceFree {
  void operator()(virInterfacePtr i) const { virInterfaceFree(i); }
};
struct SnapshotFree {
  void operator()(virDomainSnapshotPtr s) const { virDomainSnapshotFree(s); }
};
struct StatsRecordsFree {
  void operator()(virDomainStatsRecordPtr* r) const { virDomainStatsRecordListFree(r); }
};
using Domain = std::unique_ptr<virDomain, DomainFree>;
using Pool = std::unique_ptr<virStoragePool, PoolFree>;
using Volume = std::unique_ptr<virStorageVol, VolFree>;
using Network = std::unique_ptr<virNetwork, NetworkFree>;
using Interface = std::unique_ptr<virInterface, InterfaceFree>;
using Snapshot = std::unique_ptr<virDomainSnapshot, SnapshotFree>;
// A list of domain statistics records (virDomainListGetStats).
using StatsRecords = std::unique_ptr<virDomainStatsRecordPtr[], StatsRecordsFree>;

// Takes a string libvirt allocated for the caller: copies it, frees it.
// nullptr (libvirt's failure) gives nullopt.
std::optional<std::string> take_string(char* s);

// Takes an array of n handles libvirt allocated (virConnectListAll*):
// each goes into its owner, the array is freed.
template <typename Owner, typename Handle>
std::vector<Owner> take_list(Handle* list, int n) {
  std::vector<Owner> out;
  for (int i = 0; i < n; ++i) out.emplace_back(list[i]);
  std::free(list);  // NOLINT: libvirt allocates the array with malloc
  return out;
}

// virTypedParameter arrays, freed with the owner (virTypedParamsFree):
// the ones vmshift builds for a call, and the ones libvirt returns.
class TypedParams {
 public:
  TypedParams();
  TypedParams(const TypedParams&) = delete;
  TypedParams& operator=(const TypedParams&) = delete;
  ~TypedParams() { virTypedParamsFree(params_, n_); }

  // Each throws as throw_libvirt, naming the parameter.
  void add(const char* name, const std::string& value);
  void add(const char* name, unsigned long long value);
  void add(const char* name, int value);
  virTypedParameterPtr get() const { return params_; }
  int size() const { return n_; }
  // Takes over an array libvirt returned.
  virTypedParameterPtr* out_params() { return &params_; }
  int* out_size() { return &n_; }

  // The value of a parameter; 0 if absent.
  std::uint64_t ull(const char* name) const;
  bool has(const char* name) const { return virTypedParamsGet(params_, n_, name) != nullptr; }
  // "name=value" of each parameter, in order, for tests and logs.
  std::vector<std::string> describe() const;

 private:
  virTypedParameterPtr params_ = nullptr;
  int n_ = 0;
  int max_ = 0;
};

// A libvirt connection to one host. Copies share it; the last closes it.
class Connection {
 public:
  // Opens uri; `host` names the host in messages. Throws Error(kConnection).
  static Connection open(const std::string& uri, const std::string& host);

  virConnectPtr get() const { return conn_.get(); }
  const std::string& host() const { return host_; }
  const std::string& uri() const { return uri_; }

  Domain domain(const std::string& name) const;   // Error(kNotFound) naming the host
  std::vector<std::string> domain_names() const;  // all defined domains
  std::string hostname() const;
  std::string capabilities() const;
  std::uint64_t free_memory() const;
  // The domain UUIDs defined on the host.
  std::vector<std::string> domain_uuids() const;
  // What this host's hypervisor offers for a guest of this emulator, arch,
  // machine type and virt type (virConnectGetDomainCapabilities). Throws
  // when it offers nothing, e.g. no such emulator or machine type.
  std::string domain_capabilities(const std::string& emulator, const std::string& arch,
                                  const std::string& machine, const std::string& virt_type) const;
  // virConnectCompareHypervisorCPU: whether this host can run a guest CPU
  // (a <cpu> element). Returns "" when it can, or libvirt's reason.
  std::string cpu_incompatibility(const std::string& cpu_xml, const std::string& emulator,
                                  const std::string& arch, const std::string& machine,
                                  const std::string& virt_type) const;
  // Active and inactive libvirt networks: name -> active.
  std::vector<std::pair<std::string, bool>> networks() const;
  // Host interfaces libvirt knows (bridges among them); nullopt when the
  // host's libvirt has no interface driver.
  std::optional<std::vector<std::string>> interfaces() const;

 private:
  struct Close {
    void operator()(virConnectPtr c) const { virConnectClose(c); }
  };
  std::shared_ptr<virConnect> conn_;
  std::string uri_;
  std::string host_;
};

std::string domain_xml(virDomainPtr dom, unsigned int flags = 0);
std::string domain_uuid(virDomainPtr dom);

// virConnectBaselineHypervisorCPU on conn: the CPU model every one of the
// given host CPU definitions (the host-model <cpu> of each host's domain
// capabilities) supports, as a guest <cpu> element.
std::string baseline_cpu(const Connection& conn, const std::vector<std::string>& cpu_xmls,
                         const std::string& emulator, const std::string& arch,
                         const std::string& machine, const std::string& virt_type);
std::string domain_name(virDomainPtr dom);
// "running", "paused", "shut off", ...
std::string domain_state(virDomainPtr dom);
bool domain_active(virDomainPtr dom);

}  // namespace vmshift::hosts
