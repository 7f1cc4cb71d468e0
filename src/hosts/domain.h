// What a libvirt domain definition says that matters for moving it to
// another host: memory, CPU, machine, emulator, the files and networks it
// needs there, and devices that cannot migrate. Read from the domain XML
// alone, so it is tested on recorded XML.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vmshift::hosts {

struct DomainFacts {
  std::string name;
  std::string uuid;
  std::string virt_type;           // "kvm", "qemu"
  std::uint64_t memory_bytes = 0;  // current memory (what a migration sends at most)
  int vcpus = 1;
  std::string arch;     // "x86_64"
  std::string machine;  // "pc-q35-7.2" (libvirt expands the alias)
  std::string emulator;
  std::string cpu_mode;   // "", "custom", "host-model", "host-passthrough", "maximum"
  std::string cpu_model;  // for mode custom
  std::string cpu_xml;    // the <cpu> element, "" if the domain has none
  // Files other than disks the guest needs on its host: kernel, initrd,
  // firmware, NVRAM, CD-ROM images.
  std::vector<std::string> files;
  // Firmware state kept on the host, outside the disks: the UEFI NVRAM
  // file (<os><nvram>, or libvirt's default one for firmware='efi'), and
  // a vTPM whose state swtpm keeps (<tpm><backend type='emulator'>).
  std::string nvram;
  bool tpm_state = false;
  // Directories where QEMU creates files (serial/console logs, sockets).
  std::vector<std::string> file_dirs;
  std::vector<std::string> networks;   // libvirt networks of <interface type='network'>
  std::vector<std::string> bridges;    // host bridges of <interface type='bridge'>
  std::vector<std::string> host_devs;  // host NICs of <interface type='direct'>
  // The cache mode of each disk (target -> "none", "writeback", ...; ""
  // when unset, which is QEMU's writeback), and the read-only disks.
  std::map<std::string, std::string> disk_cache;
  std::vector<std::string> readonly_disks;
  // Why the domain cannot be live-migrated at all, one sentence each.
  std::vector<std::string> blockers;
};

// Throws Error(kBadData) for text that is not a domain definition.
DomainFacts parse_domain(std::string_view xml);

// Sets the source file of each disk (target -> path) in a domain XML and
// drops the old backing chain (it belongs to the old file). Throws
// Error(kNotFound) if a target is missing.
std::string rewrite_disk_paths(std::string_view xml,
                               const std::vector<std::pair<std::string, std::string>>& paths);

// A disk's new top file on a given backing file (a qcow2 overlay on its
// base), stated in the definition so that libvirt and QEMU open that chain
// whatever backing path the overlay's own header names.
struct LayeredDisk {
  std::string target;
  std::string top;
  std::string backing;
  std::string backing_format;
};
std::string rewrite_layered_disks(std::string_view xml, const std::vector<LayeredDisk>& disks);

}  // namespace vmshift::hosts
