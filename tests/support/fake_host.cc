#include "support/fake_host.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "base/error.h"
#include "hosts/local_storage.h"
#include "hosts/xml.h"

namespace vmshift::testing {
namespace {

constexpr const char* kStateMagic = "FAKE-SAVED-STATE\n";

// The VM a domain XML describes: name and disks (with backing files).
std::pair<std::string, FakeVm> vm_from_xml(const std::string& text) {
  hosts::Xml xml = hosts::Xml::parse(text);
  FakeVm vm;
  int n = xml.count("/domain/devices/disk[@device='disk']");
  for (int i = 1; i <= n; ++i) {
    std::string d = fmt::format("/domain/devices/disk[@device='disk'][{}]", i);
    std::string target = xml.text(d + "/target/@dev");
    vm.disks[target] = xml.text(d + "/source/@file");
    std::string b = xml.text(d + "/backingStore/source/@file");
    if (!b.empty()) vm.backing[target] = b;
  }
  return {xml.text("/domain/name"), vm};
}

class FakeMigration : public hosts::LiveMigration {
 public:
  FakeMigration(FakeHost& src, FakeHost& dst, std::string vm, Script script, std::string dest_xml,
                Events& events)
      : src_(src),
        dst_(dst),
        vm_(std::move(vm)),
        script_(std::move(script)),
        dest_xml_(std::move(dest_xml)),
        events_(events) {}
  hosts::MigrationStats stats() override {
    hosts::MigrationStats s;
    s.active = !ended_;
    s.memory_total = 1000;
    s.memory_processed = script_.stalls ? 500 : std::min(1000, 300 * polls_);
    s.memory_remaining = s.memory_total - s.memory_processed;
    s.iteration = 1;
    return s;
  }
  std::optional<std::string> result() override {
    if (!ended_) return std::nullopt;
    return outcome_;
  }
  std::optional<std::string> wait(Deadline) override {
    if (ended_) return outcome_;
    ++polls_;
    if (aborted_ && script_.ends_when_aborted) {
      ended_ = true;
      outcome_ = "operation aborted: migration out job: canceled by client";
      dst_.vms.erase(vm_);  // libvirt tears the destination side down
      return outcome_;
    }
    if (!script_.stalls && polls_ > script_.polls_before_end) {
      ended_ = true;
      outcome_ = script_.result;
      if (outcome_.empty() && script_.moves_vm) {
        FakeVm moved = src_.vms.at(vm_);
        src_.vms.erase(vm_);
        moved.state = "running";
        if (!dest_xml_.empty()) moved.disks = vm_from_xml(dest_xml_).second.disks;
        if (!script_.dest_disks.empty()) moved.disks = script_.dest_disks;
        dst_.vms[vm_] = moved;
      }
      return outcome_;
    }
    return std::nullopt;
  }
  void abort() override {
    events_.push_back("abort");
    aborted_ = true;
  }
  void switch_to_postcopy() override { events_.push_back("postcopy"); }
  void suspend_source() override {
    events_.push_back("suspend");
    script_.stalls = false;  // paused, the guest dirties nothing: the rest goes at once
    polls_ = script_.polls_before_end;
  }

 private:
  FakeHost& src_;
  FakeHost& dst_;
  std::string vm_;
  Script script_;
  std::string dest_xml_;
  Events& events_;
  int polls_ = 0;
  bool ended_ = false, aborted_ = false;
  std::string outcome_;
};

void make_parent(const std::string& real) {
  std::filesystem::create_directories(std::filesystem::path(real).parent_path());
}

}  // namespace

bool FakeStorage::exists(const std::string& path) {
  struct stat st {};
  return ::stat(host_.real(path).c_str(), &st) == 0;
}

std::optional<std::uint64_t> FakeStorage::free_bytes(const std::string&) { return 1ull << 40; }

void FakeStorage::remove(const std::string& path) {
  host_.log("remove " + path);
  std::filesystem::remove(host_.real(path));
}

std::optional<std::uint64_t> FakeStorage::allocation(const std::string& path) {
  struct stat st {};
  if (::stat(host_.real(path).c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

std::optional<hosts::FileIdentity> FakeStorage::identity(const std::string& path) {
  return hosts::local_identity(host_.real(path));
}

void FakeStorage::create_image(const hosts::NewImage& image) {
  host_.log(fmt::format("create {} {} {}{}", image.path, image.format, image.capacity,
                        image.backing.empty() ? "" : " on " + image.backing));
  host_.maybe_fail("create");
  if (auto before = std::exchange(host_.before_create, nullptr)) before(image.path);
  if (exists(image.path))
    throw Error(ErrorCode::kAlreadyExists, fmt::format("'{}' already exists", image.path));
  std::string real = host_.real(image.path);
  make_parent(real);
  std::ofstream(real).close();
  std::filesystem::resize_file(real, image.format == "raw" ? image.capacity : 196608);
}

FakeHost::FakeHost(std::string name, Events& events)
    : name_(std::move(name)), events_(events), root_("fakehost"), storage_(*this) {}

std::string FakeHost::real(const std::string& path) const {
  for (const auto& [dir, other] : shared_)
    if (path.rfind(dir + "/", 0) == 0) return other->real(path);
  return root_.path() + path;
}

void FakeHost::maybe_fail(const std::string& op) {
  if (fail.count(op))
    throw Error(ErrorCode::kCommandFailed,
                fmt::format("injected failure of {} on host '{}'", op, name_));
}

void FakeHost::put_file(const std::string& path, std::uint64_t bytes, char fill) {
  std::string r = real(path);
  make_parent(r);
  std::ofstream out(r, std::ios::binary | std::ios::trunc);
  std::string block(4096, fill);
  for (std::uint64_t i = 0; i < bytes; i += block.size())
    out.write(block.data(),
              static_cast<std::streamsize>(std::min<std::uint64_t>(block.size(), bytes - i)));
}

void FakeHost::replace_file(const std::string& path, std::uint64_t bytes, char fill) {
  // Made next to it, then renamed over it: the new file cannot reuse the
  // old one's inode.
  std::string tmp = path + ".replacing";
  put_file(tmp, bytes, fill);
  std::filesystem::rename(real(tmp), real(path));
}

std::string FakeHost::xml_of(const std::string& vm) const {
  const FakeVm& v = vms.at(vm);
  std::string xml = "<domain type='qemu'><name>" + vm + "</name><devices>";
  for (const auto& [t, p] : v.disks) {
    xml += "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" + p +
           "'/>";
    if (auto b = v.backing.find(t); b != v.backing.end())
      xml += "<backingStore type='file'><format type='qcow2'/><source file='" + b->second +
             "'/></backingStore>";
    xml += "<target dev='" + t + "'/></disk>";
  }
  return xml + "</devices></domain>";
}

std::optional<std::string> FakeHost::vm_state(const std::string& vm) {
  auto it = vms.find(vm);
  if (it == vms.end()) return std::nullopt;
  return it->second.state;
}

bool FakeHost::vm_persistent(const std::string& vm) {
  auto it = vms.find(vm);
  return it != vms.end() && it->second.persistent;
}

std::map<std::string, std::string> FakeHost::vm_disks(const std::string& vm, bool) {
  return vms.at(vm).disks;
}

std::string FakeHost::vm_xml(const std::string& vm, bool) { return xml_of(vm); }

bool FakeHost::abort_job(const std::string&) {
  log("abort_job");
  job_active = false;
  return true;
}

void FakeHost::undefine(const std::string& vm) {
  log("undefine " + vm);
  maybe_fail("undefine");
  // As libvirt without VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.
  if (managed_save_path(vm))
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("Refusing to undefine while domain managed save image exists (VM "
                            "'{}' on host '{}')",
                            vm, name_));
  vms.erase(vm);
}

std::unique_ptr<hosts::LiveMigration> FakeHost::start_migration(
    const std::string& vm, const hosts::MigrationRequest& request) {
  log("start");
  requests.push_back(request);
  if (!start_error.empty()) throw Error(ErrorCode::kCommandFailed, start_error);
  return std::make_unique<FakeMigration>(*this, *peer, vm, script, request.dest_xml, events_);
}

void FakeHost::snapshot_to_overlays(const std::string& vm,
                                    const std::map<std::string, std::string>& overlays) {
  log("snapshot " + vm);
  maybe_fail("snapshot");
  FakeVm& v = vms.at(vm);
  for (const auto& [target, overlay] : overlays) {
    v.backing[target] = v.disks.at(target);
    v.disks[target] = overlay;
    put_file(overlay, 64 * 1024, 'o');
  }
}

void FakeHost::commit_top(const std::string& vm, const std::string& target, Deadline) {
  log("commit " + vm + " " + target);
  maybe_fail("commit");
  FakeVm& v = vms.at(vm);
  v.disks[target] = v.backing.at(target);
  v.backing.erase(target);
}

void FakeHost::save_state(const std::string& vm, const std::string& path) {
  log("save " + vm + " " + path);
  maybe_fail("save");
  std::string xml = xml_of(vm);
  put_file(path, state_bytes, 's');
  // The definition goes first in the file, as in libvirt's save format.
  std::fstream f(real(path), std::ios::in | std::ios::out | std::ios::binary);
  f << kStateMagic << xml << '\n' << '\0';
  FakeVm& v = vms.at(vm);
  if (v.persistent)
    v.state = "shut off";
  else
    vms.erase(vm);
}

std::string FakeHost::saved_xml(const std::string& path) {
  std::ifstream in(real(path), std::ios::binary);
  std::string magic, xml;
  std::getline(in, magic);
  std::getline(in, xml);
  if (magic + "\n" != kStateMagic)
    throw Error(ErrorCode::kBadData,
                fmt::format("'{}' on host '{}' is no saved state", path, name_));
  return xml;
}

void FakeHost::restore_state(const std::string& path, const std::string& xml, bool paused) {
  log(fmt::format("restore {}{}", path, paused ? " paused" : ""));
  maybe_fail("restore");
  auto [vm, v] = vm_from_xml(xml.empty() ? saved_xml(path) : xml);
  for (const auto& [target, file] : v.disks)
    if (!storage_.exists(file))
      throw Error(ErrorCode::kNotFound,
                  fmt::format("cannot restore on host '{}': no file '{}' for disk {}", name_, file,
                              target));
  bool persistent = vms.count(vm) > 0 && vms.at(vm).persistent;
  v.persistent = persistent;
  v.state = paused ? "paused" : "running";
  vms[vm] = v;
}

std::optional<std::string> FakeHost::managed_save_path(const std::string& vm) {
  std::string p = "/var/lib/libvirt/qemu/save/" + vm + ".save";
  if (vms.count(vm) == 0 || !storage_.exists(p)) return std::nullopt;
  return p;
}

void FakeHost::managed_save(const std::string& vm) {
  log("managedsave " + vm);
  save_state(vm, "/var/lib/libvirt/qemu/save/" + vm + ".save");
}

void FakeHost::define(const std::string& xml) {
  auto [vm, v] = vm_from_xml(xml);
  log("define " + vm);
  maybe_fail("define");
  auto it = vms.find(vm);
  if (it != vms.end()) {
    it->second.persistent = true;
    if (it->second.state == "shut off") it->second.disks = v.disks, it->second.backing = v.backing;
    return;
  }
  v.state = "shut off";
  v.persistent = true;
  vms[vm] = v;
}

void FakeHost::start(const std::string& vm) {
  log("start " + vm);
  vms.at(vm).state = "running";
}

void FakeHost::destroy(const std::string& vm) {
  log("destroy " + vm);
  auto it = vms.find(vm);
  if (it == vms.end()) return;
  if (it->second.persistent)
    it->second.state = "shut off";
  else
    vms.erase(it);
}

}  // namespace vmshift::testing
