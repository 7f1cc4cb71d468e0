#include "hosts/libvirt.h"

#include <fmt/format.h>
#include <libvirt/virterror.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include "base/format.h"
#include "base/log.h"

namespace vmshift::hosts {
namespace {

void quiet(void*, virErrorPtr) {}

// How long a connection may take to open, and how a dead peer is found.
constexpr std::chrono::seconds kOpenTime{60};
constexpr int kKeepAliveInterval = 5;
constexpr unsigned int kKeepAliveCount = 3;

}  // namespace

void init_libvirt() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, quiet);
    // Keepalive needs an event loop, registered before any connection is
    // opened and run for the rest of the process.
    if (virEventRegisterDefaultImpl() != 0) {
      virResetLastError();
      return;
    }
    std::thread([] {
      for (;;)
        if (virEventRunDefaultImpl() < 0) {
          virResetLastError();
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }).detach();
  });
}

namespace {

ErrorCode code_for(int vir_code) {
  switch (vir_code) {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_STORAGE_POOL:
    case VIR_ERR_NO_STORAGE_VOL:
      return ErrorCode::kNotFound;
    case VIR_ERR_OPERATION_INVALID:
    case VIR_ERR_BLOCK_COPY_ACTIVE:
      return ErrorCode::kFailedPrecondition;
    case VIR_ERR_OPERATION_TIMEOUT:
      return ErrorCode::kTimeout;
    case VIR_ERR_RPC:
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
      return ErrorCode::kConnection;
    case VIR_ERR_INVALID_ARG:
      return ErrorCode::kInvalidArgument;
    default:
      return ErrorCode::kCommandFailed;
  }
}

}  // namespace

void throw_libvirt(std::string_view what) {
  virErrorPtr e = virGetLastError();
  if (e == nullptr || e->message == nullptr)
    throw Error(ErrorCode::kCommandFailed, fmt::format("{}: libvirt gave no reason", what));
  std::string msg = e->message;
  // The RPC layer fails calls on a connection that closed (e.g. its
  // keepalive found the host not answering).
  ErrorCode code = e->domain == VIR_FROM_RPC ? ErrorCode::kConnection : code_for(e->code);
  virResetLastError();
  throw Error(code, fmt::format("{}: {}", what, msg));
}

namespace {

struct BoundedCall {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool abandoned = false;
  int rc = 0;
  std::string error;
  ErrorCode code = ErrorCode::kCommandFailed;
};

}  // namespace

int call_within(Deadline deadline, std::string_view what, std::function<int()> call,
                std::function<void()> late) {
  auto st = std::make_shared<BoundedCall>();
  auto begun = std::chrono::steady_clock::now();
  std::thread([st, call = std::move(call), late = std::move(late)] {
    int rc = call();
    std::string error;
    ErrorCode code = ErrorCode::kCommandFailed;
    if (rc < 0) {
      virErrorPtr e = virGetLastError();
      error = e != nullptr && e->message != nullptr ? e->message : "libvirt gave no reason";
      if (e != nullptr)
        code = e->domain == VIR_FROM_RPC ? ErrorCode::kConnection : code_for(e->code);
      virResetLastError();
    }
    std::lock_guard lock(st->mu);
    if (st->abandoned) {
      if (late) late();
      return;
    }
    st->rc = rc;
    st->error = std::move(error);
    st->code = code;
    st->done = true;
    st->cv.notify_all();
  }).detach();
  std::unique_lock lock(st->mu);
  if (!st->cv.wait_for(lock, deadline.remaining(), [&] { return st->done; })) {
    st->abandoned = true;
    throw Error(ErrorCode::kTimeout, fmt::format("{}: no answer within {} s", what,
                                                 std::chrono::ceil<std::chrono::seconds>(
                                                     std::chrono::steady_clock::now() - begun)
                                                     .count()));
  }
  if (st->rc < 0) throw Error(st->code, fmt::format("{}: {}", what, st->error));
  return st->rc;
}

std::optional<std::string> take_string(char* s) {
  if (s == nullptr) return std::nullopt;
  std::string out = s;
  std::free(s);
  return out;
}

TypedParams::TypedParams() { init_libvirt(); }

void TypedParams::add(const char* name, const std::string& value) {
  if (virTypedParamsAddString(&params_, &n_, &max_, name, value.c_str()) < 0)
    throw_libvirt(fmt::format("cannot set the migration parameter {}", name));
}

void TypedParams::add(const char* name, unsigned long long value) {
  if (virTypedParamsAddULLong(&params_, &n_, &max_, name, value) < 0)
    throw_libvirt(fmt::format("cannot set the migration parameter {}", name));
}

void TypedParams::add(const char* name, int value) {
  if (virTypedParamsAddInt(&params_, &n_, &max_, name, value) < 0)
    throw_libvirt(fmt::format("cannot set the migration parameter {}", name));
}

std::uint64_t TypedParams::ull(const char* name) const {
  unsigned long long v = 0;
  return virTypedParamsGetULLong(params_, n_, name, &v) == 1 ? v : 0;
}

std::vector<std::string> TypedParams::describe() const {
  std::vector<std::string> out;
  for (int i = 0; i < n_; ++i) {
    const virTypedParameter& t = params_[i];
    std::string value;
    switch (t.type) {
      case VIR_TYPED_PARAM_STRING:
        value = t.value.s;
        break;
      case VIR_TYPED_PARAM_ULLONG:
        value = std::to_string(t.value.ul);
        break;
      case VIR_TYPED_PARAM_INT:
        value = std::to_string(t.value.i);
        break;
      default:
        value = "?";
    }
    out.push_back(fmt::format("{}={}", t.field, value));
  }
  return out;
}

Connection Connection::open(const std::string& uri, const std::string& host) {
  init_libvirt();
  // libvirt bounds no part of the handshake: a host whose libvirtd accepts
  // but never answers would hold the caller forever. A connection opened
  // after the caller gave up is closed.
  auto opened = std::make_shared<virConnectPtr>(nullptr);
  std::string what = fmt::format("cannot connect to host '{}' ({})", host, uri);
  try {
    log::Trace trace("libvirt", "virConnectOpen", "host='{}' uri='{}' deadline={}", host, uri,
                     human_duration(kOpenTime));
    call_within(
        Deadline::after(kOpenTime), what,
        [opened, uri] {
          *opened = virConnectOpen(uri.c_str());
          return *opened == nullptr ? -1 : 0;
        },
        [opened] {
          if (*opened != nullptr) virConnectClose(*opened);
        });
  } catch (const Error& e) {
    throw Error(ErrorCode::kConnection, e.what());
  }
  virConnectPtr c = *opened;
  // A host that stops answering closes the connection after
  // kKeepAliveInterval * (kKeepAliveCount + 1) s; every call waiting on it
  // then fails instead of blocking forever.
  if (virConnectSetKeepAlive(c, kKeepAliveInterval, kKeepAliveCount) < 0) {
    virErrorPtr e = virGetLastError();
    bool unsupported = e != nullptr && e->code == VIR_ERR_NO_SUPPORT;  // a local driver
    std::string why = e != nullptr && e->message != nullptr ? e->message : "no reason given";
    virResetLastError();
    if (!unsupported) {
      virConnectClose(c);
      throw Error(ErrorCode::kConnection,
                  fmt::format("cannot watch the connection to host '{}' ({}) with keepalive: {}",
                              host, uri, why));
    }
  }
  Connection conn;
  conn.conn_ = std::shared_ptr<virConnect>(c, Close());
  conn.uri_ = uri;
  conn.host_ = host;
  return conn;
}

Domain Connection::domain(const std::string& name) const {
  log::Trace trace("libvirt", "virDomainLookupByName", "vm='{}' host='{}'", name, host_);
  virDomainPtr d = virDomainLookupByName(get(), name.c_str());
  if (d == nullptr) {
    virErrorPtr e = virGetLastError();
    if (e != nullptr && e->code == VIR_ERR_NO_DOMAIN) {
      virResetLastError();
      throw Error(ErrorCode::kNotFound, fmt::format("no VM named '{}' on host '{}'", name, host_));
    }
    throw_libvirt(fmt::format("cannot look up VM '{}' on host '{}'", name, host_));
  }
  return Domain(d);
}

namespace {

// Calls f on every domain defined on the host.
template <typename F>
void for_each_domain(virConnectPtr conn, const std::string& host, F&& f) {
  virDomainPtr* list = nullptr;
  log::Trace trace("libvirt", "virConnectListAllDomains", "host='{}'", host);
  int n = virConnectListAllDomains(conn, &list, 0);
  if (n < 0) throw_libvirt(fmt::format("cannot list VMs on host '{}'", host));
  for (const auto& d : take_list<Domain>(list, n)) f(d.get());
}

}  // namespace

std::vector<std::string> Connection::domain_names() const {
  std::vector<std::string> names;
  for_each_domain(get(), host_, [&](virDomainPtr d) { names.push_back(domain_name(d)); });
  return names;
}

std::string Connection::hostname() const {
  log::Trace trace("libvirt", "virConnectGetHostname", "host='{}'", host_);
  std::optional<std::string> h = take_string(virConnectGetHostname(get()));
  if (!h) throw_libvirt(fmt::format("cannot get the hostname of '{}'", host_));
  return *h;
}

std::string Connection::capabilities() const {
  log::Trace trace("libvirt", "virConnectGetCapabilities", "host='{}'", host_);
  std::optional<std::string> x = take_string(virConnectGetCapabilities(get()));
  if (!x) throw_libvirt(fmt::format("cannot get the capabilities of '{}'", host_));
  return *x;
}

std::uint64_t Connection::free_memory() const {
  log::Trace trace("libvirt", "virNodeGetFreeMemory", "host='{}'", host_);
  unsigned long long m = virNodeGetFreeMemory(get());
  if (m == 0) throw_libvirt(fmt::format("cannot get the free memory of '{}'", host_));
  return m;
}

std::vector<std::string> Connection::domain_uuids() const {
  std::vector<std::string> uuids;
  for_each_domain(get(), host_, [&](virDomainPtr d) { uuids.push_back(domain_uuid(d)); });
  return uuids;
}

namespace {
const char* or_null(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }
}  // namespace

std::string Connection::domain_capabilities(const std::string& emulator, const std::string& arch,
                                            const std::string& machine,
                                            const std::string& virt_type) const {
  log::Trace trace("libvirt", "virConnectGetDomainCapabilities",
                   "host='{}' emulator='{}' arch={} machine={} virttype={}", host_, emulator, arch,
                   machine, virt_type);
  std::optional<std::string> x = take_string(virConnectGetDomainCapabilities(
      get(), or_null(emulator), or_null(arch), or_null(machine), or_null(virt_type), 0));
  if (!x)
    throw_libvirt(fmt::format("host '{}' cannot run a {} guest of machine type {} with {}", host_,
                              virt_type, machine, emulator.empty() ? "its QEMU" : emulator));
  return *x;
}

std::string Connection::cpu_incompatibility(const std::string& cpu_xml, const std::string& emulator,
                                            const std::string& arch, const std::string& machine,
                                            const std::string& virt_type) const {
  log::Trace trace("libvirt", "virConnectCompareHypervisorCPU",
                   "host='{}' emulator='{}' arch={} machine={} virttype={} cpu={} B", host_,
                   emulator, arch, machine, virt_type, cpu_xml.size());
  int r = virConnectCompareHypervisorCPU(get(), or_null(emulator), or_null(arch), or_null(machine),
                                         or_null(virt_type), cpu_xml.c_str(), 0);
  if (r == VIR_CPU_COMPARE_IDENTICAL || r == VIR_CPU_COMPARE_SUPERSET) return "";
  if (r == VIR_CPU_COMPARE_INCOMPATIBLE) {
    // Ask again with FAIL_INCOMPATIBLE: the error then names what is missing.
    virConnectCompareHypervisorCPU(get(), or_null(emulator), or_null(arch), or_null(machine),
                                   or_null(virt_type), cpu_xml.c_str(),
                                   VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE);
    virErrorPtr e = virGetLastError();
    std::string why = e != nullptr && e->message != nullptr
                          ? e->message
                          : fmt::format("host '{}' cannot provide the guest's CPU", host_);
    virResetLastError();
    return why;
  }
  throw_libvirt(fmt::format("cannot compare the guest's CPU with host '{}'", host_));
}

std::vector<std::pair<std::string, bool>> Connection::networks() const {
  virNetworkPtr* list = nullptr;
  log::Trace trace("libvirt", "virConnectListAllNetworks", "host='{}'", host_);
  int n = virConnectListAllNetworks(get(), &list, 0);
  if (n < 0) throw_libvirt(fmt::format("cannot list the networks of host '{}'", host_));
  std::vector<std::pair<std::string, bool>> out;
  for (const Network& net : take_list<Network>(list, n)) {
    const char* name = virNetworkGetName(net.get());
    out.emplace_back(name != nullptr ? name : "?", virNetworkIsActive(net.get()) == 1);
  }
  return out;
}

std::optional<std::vector<std::string>> Connection::interfaces() const {
  virInterfacePtr* list = nullptr;
  log::Trace trace("libvirt", "virConnectListAllInterfaces", "host='{}'", host_);
  int n = virConnectListAllInterfaces(get(), &list, 0);
  if (n < 0) {
    virResetLastError();
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const Interface& i : take_list<Interface>(list, n)) {
    const char* name = virInterfaceGetName(i.get());
    if (name != nullptr) out.emplace_back(name);
  }
  return out;
}

std::string baseline_cpu(const Connection& conn, const std::vector<std::string>& cpu_xmls,
                         const std::string& emulator, const std::string& arch,
                         const std::string& machine, const std::string& virt_type) {
  std::vector<const char*> xmls;
  for (const auto& x : cpu_xmls) xmls.push_back(x.c_str());
  log::Trace trace("libvirt", "virConnectBaselineHypervisorCPU",
                   "host='{}' cpus={} arch={} machine={} virttype={}", conn.host(), cpu_xmls.size(),
                   arch, machine, virt_type);
  std::optional<std::string> r = take_string(virConnectBaselineHypervisorCPU(
      conn.get(), or_null(emulator), or_null(arch), or_null(machine), or_null(virt_type),
      xmls.data(), static_cast<unsigned int>(xmls.size()), VIR_CONNECT_BASELINE_CPU_MIGRATABLE));
  if (!r)
    throw_libvirt(fmt::format("cannot compute a CPU model common to {} hosts", cpu_xmls.size()));
  return *r;
}

std::string domain_uuid(virDomainPtr dom) {
  char buf[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom, buf) != 0)
    throw_libvirt(fmt::format("cannot get the UUID of VM '{}'", domain_name(dom)));
  return buf;
}

std::string domain_xml(virDomainPtr dom, unsigned int flags) {
  log::Trace trace("libvirt", "virDomainGetXMLDesc", "vm='{}' flags={:#x}", domain_name(dom),
                   flags);
  std::optional<std::string> x = take_string(virDomainGetXMLDesc(dom, flags));
  if (!x) throw_libvirt(fmt::format("cannot read the definition of VM '{}'", domain_name(dom)));
  return *x;
}

std::string domain_name(virDomainPtr dom) {
  const char* n = virDomainGetName(dom);
  return n != nullptr ? n : "?";
}

std::string domain_state(virDomainPtr dom) {
  int state = 0, reason = 0;
  log::Trace trace("libvirt", "virDomainGetState", "vm='{}'", domain_name(dom));
  if (virDomainGetState(dom, &state, &reason, 0) != 0)
    throw_libvirt(fmt::format("cannot get the state of VM '{}'", domain_name(dom)));
  switch (state) {
    case VIR_DOMAIN_RUNNING:
      return "running";
    case VIR_DOMAIN_BLOCKED:
      return "blocked";
    case VIR_DOMAIN_PAUSED:
      return "paused";
    case VIR_DOMAIN_SHUTDOWN:
      return "shutting down";
    case VIR_DOMAIN_SHUTOFF:
      return "shut off";
    case VIR_DOMAIN_CRASHED:
      return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
      return "suspended";
    default:
      return "unknown";
  }
}

bool domain_active(virDomainPtr dom) {
  log::Trace trace("libvirt", "virDomainIsActive", "vm='{}'", domain_name(dom));
  int r = virDomainIsActive(dom);
  if (r < 0) throw_libvirt(fmt::format("cannot get the state of VM '{}'", domain_name(dom)));
  return r == 1;
}

}  // namespace vmshift::hosts
