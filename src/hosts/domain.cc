#include "hosts/domain.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "base/error.h"
#include "hosts/xml.h"

namespace vmshift::hosts {
namespace {

std::uint64_t to_bytes(const std::string& value, const std::string& unit) {
  if (value.empty()) return 0;
  std::uint64_t v = std::strtoull(value.c_str(), nullptr, 10);
  std::string u = unit.empty() ? "KiB" : unit;
  if (u == "b" || u == "bytes") return v;
  if (u == "KB") return v * 1000;
  if (u == "k" || u == "KiB") return v << 10;
  if (u == "MB") return v * 1000 * 1000;
  if (u == "M" || u == "MiB") return v << 20;
  if (u == "GB") return v * 1000 * 1000 * 1000;
  if (u == "G" || u == "GiB") return v << 30;
  if (u == "T" || u == "TiB") return v << 40;
  return v << 10;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

}  // namespace

DomainFacts parse_domain(std::string_view text) {
  Xml xml = Xml::parse(text);
  if (xml.count("/domain") != 1)
    throw Error(ErrorCode::kBadData, "the XML is not a libvirt domain definition");
  DomainFacts f;
  f.name = xml.text("/domain/name");
  f.uuid = xml.text("/domain/uuid");
  f.virt_type = xml.text("/domain/@type");
  std::string current = xml.text("/domain/currentMemory");
  f.memory_bytes = current.empty()
                       ? to_bytes(xml.text("/domain/memory"), xml.text("/domain/memory/@unit"))
                       : to_bytes(current, xml.text("/domain/currentMemory/@unit"));
  if (std::string v = xml.text("/domain/vcpu"); !v.empty()) f.vcpus = std::atoi(v.c_str());
  f.arch = xml.text("/domain/os/type/@arch");
  f.machine = xml.text("/domain/os/type/@machine");
  f.emulator = xml.text("/domain/devices/emulator");
  if (xml.count("/domain/cpu") > 0) {
    f.cpu_mode = xml.text("/domain/cpu/@mode");
    if (f.cpu_mode.empty()) f.cpu_mode = "custom";
    f.cpu_model = xml.text("/domain/cpu/model");
    f.cpu_xml = xml.element("/domain/cpu");
  }
  for (const char* x : {"/domain/os/kernel", "/domain/os/initrd", "/domain/os/loader",
                        "/domain/os/nvram", "/domain/os/dtb"})
    add_unique(f.files, xml.text(x));
  f.nvram = xml.text("/domain/os/nvram");
  if (f.nvram.empty() && xml.text("/domain/os/@firmware") == "efi")
    f.nvram = fmt::format("/var/lib/libvirt/qemu/nvram/{}_VARS.fd", f.name);  // libvirt's default
  f.tpm_state = xml.count("/domain/devices/tpm/backend[@type='emulator']") > 0;
  for (const auto& p : xml.all("/domain/devices/disk[@device!='disk']/source/@file"))
    add_unique(f.files, p);
  for (const char* kind : {"serial", "console", "parallel", "channel"}) {
    for (const auto& p :
         xml.all(fmt::format("/domain/devices/{}[@type='file']/source/@path", kind)))
      add_unique(f.file_dirs, dir_of(p));
    for (const auto& p : xml.all(fmt::format("/domain/devices/{}/log/@file", kind)))
      add_unique(f.file_dirs, dir_of(p));
  }
  for (const auto& n : xml.all("/domain/devices/interface[@type='network']/source/@network"))
    add_unique(f.networks, n);
  for (const auto& b : xml.all("/domain/devices/interface[@type='bridge']/source/@bridge"))
    add_unique(f.bridges, b);
  for (const auto& d : xml.all("/domain/devices/interface[@type='direct']/source/@dev"))
    add_unique(f.host_devs, d);

  int ndisks = xml.count("/domain/devices/disk[@device='disk']");
  for (int i = 1; i <= ndisks; ++i) {
    std::string d = fmt::format("/domain/devices/disk[@device='disk'][{}]", i);
    std::string target = xml.text(d + "/target/@dev");
    f.disk_cache[target] = xml.text(d + "/driver/@cache");
    if (xml.count(d + "/readonly") > 0) f.readonly_disks.push_back(target);
  }

  // What QEMU or libvirt refuses to migrate.
  if (int n = xml.count("/domain/devices/hostdev"); n > 0)
    f.blockers.push_back(fmt::format(
        "{} host device{} passed through (<hostdev>): the device cannot move with the VM", n,
        n == 1 ? " is" : "s are"));
  if (xml.count("/domain/devices/interface[@type='hostdev']") > 0)
    f.blockers.push_back("a host network device is passed through (<interface type='hostdev'>)");
  if (xml.count("/domain/devices/filesystem[driver/@type='virtiofs']") > 0)
    f.blockers.push_back(
        "a virtiofs file system (<filesystem> with driver virtiofs) cannot migrate");
  if (xml.count("/domain/devices/shmem") > 0)
    f.blockers.push_back("an ivshmem device (<shmem>) cannot migrate");
  for (const auto& feat :
       xml.all("/domain/cpu/feature[@policy='require' or @policy='force'][@name='invtsc']/@name"))
    f.blockers.push_back(
        fmt::format("the CPU feature '{}' (invariant TSC) makes the VM non-migratable", feat));
  if (xml.text("/domain/features/@migratable") == "off" ||
      xml.text("/domain/cpu/@migratable") == "off")
    f.blockers.push_back("the CPU definition is marked migratable='off'");
  return f;
}

std::string rewrite_disk_paths(std::string_view text,
                               const std::vector<std::pair<std::string, std::string>>& paths) {
  Xml xml = Xml::parse(text);
  for (const auto& [target, path] : paths) {
    std::string d = fmt::format("/domain/devices/disk[@device='disk'][target/@dev='{}']", target);
    if (xml.set_attribute(d + "/source", "file", path) == 0)
      throw Error(ErrorCode::kNotFound, fmt::format("the definition has no disk '{}'", target));
    xml.remove(d + "/backingStore");
  }
  return xml.to_string();
}

std::string rewrite_layered_disks(std::string_view text, const std::vector<LayeredDisk>& disks) {
  Xml xml = Xml::parse(text);
  for (const auto& d : disks) {
    std::string x = fmt::format("/domain/devices/disk[@device='disk'][target/@dev='{}']", d.target);
    if (xml.set_attribute(x + "/source", "file", d.top) == 0)
      throw Error(ErrorCode::kNotFound, fmt::format("the definition has no disk '{}'", d.target));
    xml.set_attribute(x + "/driver", "type", "qcow2");
    xml.remove(x + "/backingStore");
    // The base's own chain, if any, libvirt reads from its header.
    xml.append(x, fmt::format("<backingStore type='file'><format type='{}'/><source file='{}'/>"
                              "</backingStore>",
                              xml_escape(d.backing_format.empty() ? "raw" : d.backing_format),
                              xml_escape(d.backing)));
  }
  return xml.to_string();
}

}  // namespace vmshift::hosts
