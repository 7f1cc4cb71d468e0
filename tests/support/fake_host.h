// A simulated migration host for unit tests of the transfer types: VMs in
// memory (state, disks, backing files, definitions), files real (each host
// path lives under the host's own temporary directory, so the real copy
// engine moves real bytes between hosts), every action logged in order,
// and failures injectable by name.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hosts/migration.h"
#include "support/temp_dir.h"
#include "transfer/local_file.h"

namespace vmshift::testing {

// What the hosts did, in order: "host2 create /x.qcow2", "host1 save g1", ...
using Events = std::vector<std::string>;

class FakeHost;

// The storage of a FakeHost: real files under its root.
class FakeStorage : public hosts::Storage {
 public:
  FakeStorage(FakeHost& host) : host_(host) {}
  bool exists(const std::string& path) override;
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override;
  void remove(const std::string& path) override;
  bool same_file(const std::string& a, const std::string& b) override { return a == b; }
  std::optional<std::uint64_t> allocation(const std::string& path) override;
  void create_image(const hosts::NewImage& image) override;
  // Device, inode and birth time of the real file, as LocalStorage.
  std::optional<hosts::FileIdentity> identity(const std::string& path) override;

 private:
  FakeHost& host_;
};

// A scripted live migration: a few polls of progress, then an end.
struct Script {
  int polls_before_end = 3;
  std::string result;  // "" success, else libvirt's error
  bool ends_when_aborted = true;
  bool stalls = false;   // what is left never shrinks
  bool moves_vm = true;  // on success the VM runs on the destination
  // Disks the VM has on the destination afterwards, if not those asked for.
  std::map<std::string, std::string> dest_disks;
};

struct FakeVm {
  std::string state = "running";
  bool persistent = true;
  std::map<std::string, std::string> disks;    // target -> top file
  std::map<std::string, std::string> backing;  // target -> backing file
};

class FakeHost : public hosts::MigrationHost {
 public:
  FakeHost(std::string name, Events& events);

  // The real path of a host path.
  std::string real(const std::string& path) const;
  // Paths under dir are the other host's: storage both hosts share.
  void share(const std::string& dir, const FakeHost& other) { shared_[dir] = &other; }
  // Makes a file of `bytes` bytes of a pattern at a host path.
  void put_file(const std::string& path, std::uint64_t bytes, char fill = 'd');
  // Puts another file (a new inode) at a host path, as a user or another
  // job replacing it would; the old one goes.
  void replace_file(const std::string& path, std::uint64_t bytes, char fill = 'r');
  // Runs once before the next create_image (e.g. a file appears after the
  // plan and before the create).
  std::function<void(const std::string& path)> before_create;
  std::unique_ptr<transfer::Endpoint> file(const std::string& path) {
    return std::make_unique<transfer::LocalFile>(real(path));
  }
  // The domain XML of a VM as this host would give it.
  std::string xml_of(const std::string& vm) const;

  std::string name() const override { return name_; }
  hosts::Storage& storage() override { return storage_; }
  std::optional<std::string> vm_state(const std::string& vm) override;
  bool vm_persistent(const std::string& vm) override;
  std::map<std::string, std::string> vm_disks(const std::string& vm, bool persistent) override;
  std::string vm_xml(const std::string& vm, bool persistent) override;
  bool vm_job_active(const std::string&) override { return job_active; }
  bool abort_job(const std::string&) override;
  std::optional<hosts::CompletedMigration> completed_migration(const std::string&) override {
    return completed;
  }
  void undefine(const std::string& vm) override;
  std::unique_ptr<hosts::LiveMigration> start_migration(
      const std::string& vm, const hosts::MigrationRequest& request) override;
  void snapshot_to_overlays(const std::string& vm,
                            const std::map<std::string, std::string>& overlays) override;
  void commit_top(const std::string& vm, const std::string& target, Deadline deadline) override;
  void save_state(const std::string& vm, const std::string& path) override;
  std::string saved_xml(const std::string& path) override;
  void restore_state(const std::string& path, const std::string& xml, bool paused) override;
  std::optional<std::string> managed_save_path(const std::string& vm) override;
  void managed_save(const std::string& vm) override;
  void define(const std::string& xml) override;
  void start(const std::string& vm) override;
  void destroy(const std::string& vm) override;

  std::map<std::string, FakeVm> vms;
  std::optional<hosts::CompletedMigration> completed;
  bool job_active = false;
  std::string start_error;
  Script script;
  FakeHost* peer = nullptr;
  std::vector<hosts::MigrationRequest> requests;
  // Operations that throw: "snapshot", "commit", "save", "restore", "define", "create",
  // "undefine".
  std::set<std::string> fail;
  std::uint64_t state_bytes = 3 << 20;  // size of a saved state file

 private:
  friend class FakeStorage;
  void log(const std::string& what) { events_.push_back(name_ + " " + what); }
  void maybe_fail(const std::string& op);
  std::string name_;
  Events& events_;
  TempDir root_;
  std::map<std::string, const FakeHost*> shared_;
  FakeStorage storage_;
};

}  // namespace vmshift::testing
