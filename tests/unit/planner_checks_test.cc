// Each planner check on its own, over facts written by hand (no storage,
// no host): a case that passes and one that fails (or warns) for every
// check_*, and the layout the checks look at.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/planner.h"

namespace vmshift::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;

const char* kInventory = R"(
[[host]]
name = "host1"
uri = "qemu:///one"
[[host]]
name = "host2"
uri = "qemu:///two"

[[storage]]
name = "local1"
path = "/local"
hosts = ["host1"]
[[storage]]
name = "local2"
path = "/local"
hosts = ["host2"]
[[storage]]
name = "shared"
path = "/shared"
hosts = ["host1", "host2"]
shared = true
)";

class CheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.inventory = hosts::Inventory::parse(kInventory, "test.toml");
    f_.request.vm = "g1";
    f_.request.source_host = "host1";
    f_.request.options.dest_host = "host2";
    hosts::DomainFacts& d = f_.guest.domain;
    d.name = "g1";
    d.uuid = "0b0c0d0e-0000-0000-0000-000000000001";
    d.virt_type = "kvm";
    d.memory_bytes = 256 * kMiB;
    d.machine = "pc-q35-7.2";
    d.emulator = "/usr/bin/qemu-system-x86_64";
    d.disk_cache = {{"vda", "none"}};
    f_.guest.state = "running";
    f_.guest.dirty_bytes_per_s = 1e6;
    f_.guest.source_libvirt_version = 9000000;
    f_.dest.host = "host2";
    f_.dest.free_memory = 4 * kGiB;
    f_.link = {125e6, "assumed"};
    disk_on("shared");
  }

  // The VM's one disk vda, on an inventory location.
  void disk_on(const std::string& location) {
    PlanDisk pd;
    pd.info.target = "vda";
    pd.info.format = "qcow2";
    pd.info.capacity = 64 * kMiB;
    pd.info.allocation = 40 * kMiB;
    pd.location = f_.inventory.storage_for("host1", "/" + location + "/x");
    pd.info.path = "/" + location + "/g1-vda.qcow2";
    f_.guest.disks = {pd};
  }
  void exists(const std::string& path, bool there = true) {
    f_.dest_files.files[path] = {there, ""};
  }
  void dir(const std::string& d, std::uint64_t free) { f_.dest_files.dirs[d] = {free, ""}; }

  Layout layout() const { return lay_out(f_); }

  // The one check a check_* function made.
  template <typename Fn>
  Check one(Fn fn) const {
    std::vector<Check> v = fn(f_, layout());
    if (v.size() != 1)
      throw std::runtime_error("expected one check, got " + std::to_string(v.size()));
    return v.front();
  }

  Facts f_;
};

#define EXPECT_CHECK(check, status_, text)                   \
  do {                                                       \
    Check c_ = (check);                                      \
    EXPECT_EQ(c_.status, CheckStatus::status_) << c_.reason; \
    EXPECT_THAT(c_.reason, HasSubstr(text));                 \
  } while (0)

// Test the layout: shared disks stay for a live migration, local ones are
// copied (live VSM), --storage moves them, a shut-off VM is a network
// migration whose copies take the top layer only.
TEST_F(CheckTest, LayOut) {
  Layout l = layout();
  EXPECT_EQ(l.type, migrate::Kind::kLive);
  EXPECT_TRUE(l.copies.empty());
  EXPECT_EQ(l.shared.at("vda"), "/shared/g1-vda.qcow2");
  EXPECT_THAT(l.own_seen, ElementsAre("/shared/g1-vda.qcow2"));

  disk_on("local");
  l = layout();
  EXPECT_EQ(l.type, migrate::Kind::kLiveVsm);
  EXPECT_THAT(l.local, ElementsAre("vda (on local1)"));
  ASSERT_EQ(l.copies.size(), 1u);
  EXPECT_EQ(l.copies[0].dest, "/local/g1-vda.qcow2");
  EXPECT_THAT(l.own_seen, IsEmpty());  // host2's /local is another directory

  f_.request.options.storage = "shared";
  EXPECT_EQ(layout().copies.at(0).dest, "/shared/g1-vda.qcow2");
  EXPECT_TRUE(layout().moving);

  f_.guest.state = "shut off";
  f_.request.options.storage.reset();
  f_.guest.disks[0].chain_allocation = 100 * kMiB;
  l = layout();
  EXPECT_EQ(l.type, migrate::Kind::kNetwork);
  EXPECT_TRUE(l.top_only);
  EXPECT_EQ(l.copies.at(0).need, 40 * kMiB);
}

TEST_F(CheckTest, Type) {
  EXPECT_THAT(check_type(f_, layout()), IsEmpty());
  f_.request.options.type = migrate::Kind::kLiveVsm;
  EXPECT_THAT(check_type(f_, layout()), IsEmpty());
  f_.guest.state = "shut off";
  EXPECT_CHECK(one(check_type), kFail, "--type live-vsm needs a running VM");
  f_.guest.state = "crashed";
  f_.request.options.type.reset();
  EXPECT_CHECK(one(check_type), kFail, "the VM is crashed");
}

// Test that a job type `vmshift migrate` does not run is refused by name,
// listing those it runs, and that a forced quick migration without shared
// storage becomes a QSM.
TEST_F(CheckTest, TypeKindsMigrateDoesNotRun) {
  for (migrate::Kind k : {migrate::Kind::kCopy, migrate::Kind::kLiveStorage}) {
    f_.request.options.type = k;
    EXPECT_CHECK(one(check_type), kFail,
                 fmt::format("unknown transfer type '{}' (known: live, live-vsm, quick, qsm, "
                             "network)",
                             migrate::kind_name(k)));
  }
  for (migrate::Kind k : transfer_kinds()) EXPECT_TRUE(transfer_kind(k));
  EXPECT_FALSE(transfer_kind(migrate::Kind::kCopy));
  disk_on("local");
  f_.request.options.type = migrate::Kind::kQuick;
  Layout l = layout();
  EXPECT_EQ(l.type, migrate::Kind::kQsm);
  EXPECT_THAT(l.why, HasSubstr("without shared storage a quick migration is a quick storage"));
  EXPECT_THAT(check_type(f_, l), IsEmpty());
  f_.request.options.type = migrate::Kind::kNetwork;
  EXPECT_CHECK(one(check_type), kFail, "--type network moves a stopped VM; the VM is running");
  f_.request.options.type = migrate::Kind::kLive;
  EXPECT_CHECK(one(check_type), kFail, "--type live keeps the disks where they are");
}

TEST_F(CheckTest, Destination) {
  EXPECT_CHECK(one(check_destination), kPass, "host 'host2' answers");
  f_.dest.error = "cannot connect to host 'host2'";
  EXPECT_CHECK(one(check_destination), kFail, "cannot connect to host 'host2'");
  f_.dest.error.clear();
  f_.request.options.dest_host = f_.dest.host = "host1";
  EXPECT_CHECK(one(check_destination), kFail, "the VM is already on host 'host1'");
  f_.request.options.type = migrate::Kind::kQsm;
  f_.request.options.storage = "local1";
  EXPECT_CHECK(one(check_destination), kPass, "the VM stays on host 'host1'; its disks move");
}

TEST_F(CheckTest, Name) {
  EXPECT_CHECK(one(check_name), kPass, "no VM named 'g1'");
  f_.dest.domain_uuids = {f_.guest.domain.uuid};
  EXPECT_CHECK(one(check_name), kFail, "already has a VM with UUID");
  f_.dest.domain_names = {"g1"};
  EXPECT_CHECK(one(check_name), kFail, "already has a VM named 'g1'");
}

// (The CPU models against recorded domain capabilities: PlannerTest.CpuModels.)
TEST_F(CheckTest, Cpu) {
  auto cpu = [](const Facts& f, const Layout& l) { return check_cpu(f, l); };
  EXPECT_CHECK(one(cpu), kPass, "the hypervisor's default CPU model");
  f_.guest.domain.cpu_mode = "host-passthrough";
  EXPECT_CHECK(one(cpu), kWarn, "safe only between hosts with identical CPUs");
  f_.dest.cpu_incompatible = "Host CPU does not provide required features: svm";
  EXPECT_CHECK(one(cpu), kFail, "host 'host2' cannot provide the guest's CPU");
}

TEST_F(CheckTest, Machine) {
  EXPECT_CHECK(one(check_machine), kPass, "runs kvm guests of machine type pc-q35-7.2");
  f_.dest.domcaps_error = "no such machine type";
  EXPECT_CHECK(one(check_machine), kFail, "no such machine type");
}

TEST_F(CheckTest, Memory) {
  EXPECT_CHECK(one(check_memory), kPass, "256.0 MiB needed");
  f_.dest.free_memory = 330 * kMiB;  // 320 MiB needed with QEMU's margin, a quarter more
  EXPECT_CHECK(one(check_memory), kWarn, "little left afterwards");
  f_.dest.free_memory = 300 * kMiB;
  EXPECT_CHECK(one(check_memory), kFail, "host 'host2' has 300.0 MiB free");
  f_.guest.state = "shut off";
  EXPECT_CHECK(one(check_memory), kPass, "not running");
}

TEST_F(CheckTest, Tcg) {
  f_.request.options.postcopy = true;
  EXPECT_THAT(check_tcg(f_, layout()), IsEmpty());  // kvm
  f_.guest.domain.virt_type = "qemu";
  EXPECT_CHECK(one(check_tcg), kFail, "--postcopy is refused for a guest under TCG");
  f_.request.options.postcopy = false;
  EXPECT_THAT(check_tcg(f_, layout()), IsEmpty());
}

TEST_F(CheckTest, Postcopy) {
  EXPECT_THAT(check_postcopy(f_, layout()), IsEmpty());
  f_.request.options.postcopy = true;
  EXPECT_CHECK(one(check_postcopy), kPass, "allowed");
  f_.guest.domain.virt_type = "qemu";  // refused by check_tcg instead
  EXPECT_THAT(check_postcopy(f_, layout()), IsEmpty());
}

TEST_F(CheckTest, Compress) {
  EXPECT_THAT(check_compress(f_, layout()), IsEmpty());
  f_.request.options.compress = "zstd";
  EXPECT_CHECK(one(check_compress), kFail,
               "needs libvirt 9.4 or newer on host 'host1' (it has 9.0.0)");
  f_.guest.source_libvirt_version = 9004000;
  EXPECT_CHECK(one(check_compress), kPass, "memory compressed with zstd over 2 connections");
}

// Test that a live migration's --bandwidth must be whole MiB/s (libvirt's
// unit), and that a copy vmshift paces itself (QSM) takes any rate.
TEST_F(CheckTest, Bandwidth) {
  EXPECT_THAT(check_bandwidth(f_, layout()), IsEmpty());  // no limit
  f_.request.options.bandwidth = 3 * kMiB;
  EXPECT_THAT(check_bandwidth(f_, layout()), IsEmpty());
  f_.request.options.bandwidth = kMiB / 2;
  EXPECT_CHECK(one(check_bandwidth), kFail,
               "--bandwidth 0.5 MiB/s: libvirt limits a live migration in whole MiB/s only");
  disk_on("local");
  EXPECT_CHECK(one(check_bandwidth), kFail, "limits a live-vsm migration");
  f_.request.options.type = migrate::Kind::kQsm;
  EXPECT_THAT(check_bandwidth(f_, layout()), IsEmpty());
}

TEST_F(CheckTest, Devices) {
  EXPECT_CHECK(one(check_devices), kPass, "no device that prevents migration");
  f_.guest.domain.blockers = {"1 host device is passed through", "invtsc"};
  EXPECT_CHECK(one(check_devices), kFail, "1 host device is passed through; invtsc");
}

TEST_F(CheckTest, Networks) {
  EXPECT_CHECK(one(check_networks), kPass, "no network interface");
  f_.guest.domain.networks = {"default"};
  f_.guest.domain.bridges = {"br0"};
  f_.dest.networks = {{"default", true}};
  f_.dest.interfaces = std::vector<std::string>{"br0"};
  EXPECT_CHECK(one(check_networks), kPass, "host 'host2' has network 'default', interface 'br0'");
  f_.dest.interfaces.reset();
  EXPECT_CHECK(one(check_networks), kWarn, "cannot list its interfaces");
  f_.dest.networks = {{"default", false}};
  EXPECT_CHECK(one(check_networks), kFail, "inactive: network 'default'");
}

TEST_F(CheckTest, Firmware) {
  f_.guest.domain.nvram = "/nvram/g1_VARS.fd";
  EXPECT_THAT(check_firmware(f_, layout()), IsEmpty());  // live carries it
  f_.request.options.type = migrate::Kind::kQuick;
  EXPECT_CHECK(one(check_firmware), kFail, "a quick migration does not copy firmware state");
}

// Test that firmware state passes when the VM stays on its host, and that
// a network migration's refusal gives no live hint for a VM that is off.
TEST_F(CheckTest, FirmwareStaysOnItsHost) {
  f_.guest.domain.tpm_state = true;
  disk_on("local");
  f_.dest.host = "host1";
  f_.request.options.dest_host = "host1";
  f_.request.options.type = migrate::Kind::kQsm;
  f_.request.options.storage = "shared";
  EXPECT_CHECK(one(check_firmware), kPass, "the VM stays on host 'host1' with its vTPM state");
  f_.dest.host = "host2";
  f_.request.options.dest_host = "host2";
  f_.request.options.type.reset();
  f_.request.options.storage.reset();
  f_.guest.state = "shut off";
  Check c = one(check_firmware);
  EXPECT_CHECK(c, kFail, "a network migration does not copy firmware state");
  EXPECT_THAT(c.reason, ::testing::Not(HasSubstr("--type live")));
}

TEST_F(CheckTest, Files) {
  EXPECT_CHECK(one(check_files), kPass, "no other file needed");
  f_.guest.domain.files = {"/boot/vmlinuz"};
  f_.guest.domain.file_dirs = {"/logs"};
  exists("/boot/vmlinuz");
  dir("/logs", 1 * kGiB);
  EXPECT_CHECK(one(check_files), kPass, "host 'host2' has /boot/vmlinuz");
  f_.dest_files.dirs.clear();
  EXPECT_CHECK(one(check_files), kFail, "lacks /logs/");
  f_.dest_files.files["/boot/vmlinuz"] = {false, "connection reset"};
  EXPECT_CHECK(one(check_files), kFail, "cannot check: connection reset");
}

TEST_F(CheckTest, Requested) {
  EXPECT_THAT(check_requested(f_, layout()), IsEmpty());
  f_.request.options.storage = "local1";
  EXPECT_CHECK(one(check_requested), kFail, "host 'host2' does not see storage 'local1'");
  f_.request.options.storage = "local2";
  EXPECT_THAT(check_requested(f_, layout()), IsEmpty());
  f_.request.options.storage.reset();
  f_.request.options.disks = {{"vdb", "/x"}};
  EXPECT_CHECK(one(check_requested), kFail, "the VM has no disk 'vdb'");
}

// Test that a --disk destination must be an absolute path, and that known
// disks with absolute paths pass.
TEST_F(CheckTest, RequestedPaths) {
  f_.request.options.disks = {{"vda", "/local/vda.qcow2"}};
  EXPECT_THAT(check_requested(f_, layout()), IsEmpty());
  f_.request.options.disks = {{"vda", "local/vda.qcow2"}};
  EXPECT_CHECK(one(check_requested), kFail,
               "destination 'local/vda.qcow2' of disk vda must be an absolute path");
  f_.request.options.storage = "nowhere";
  f_.request.options.disks.clear();
  EXPECT_CHECK(one(check_requested), kFail, "no storage location 'nowhere' in the inventory");
}

// Test that a shared disk with cache='directsync', or read-only, may move
// live; that a disk the migration copies is not asked; and that the other
// kinds are not checked.
TEST_F(CheckTest, CacheModesThatPass) {
  f_.guest.domain.disk_cache = {{"vda", "directsync"}};
  EXPECT_THAT(check_cache(f_, layout()), IsEmpty());
  f_.guest.domain.disk_cache = {{"vda", "writeback"}};
  EXPECT_CHECK(one(check_cache), kFail, "vda (cache=writeback)");
  f_.guest.domain.readonly_disks = {"vda"};
  EXPECT_THAT(check_cache(f_, layout()), IsEmpty());
  f_.guest.domain.readonly_disks.clear();
  f_.request.options.type = migrate::Kind::kQuick;
  EXPECT_THAT(check_cache(f_, layout()), IsEmpty());
  f_.request.options.type.reset();
  disk_on("local");
  EXPECT_THAT(check_cache(f_, layout()), IsEmpty());  // copied: not opened twice
}

TEST_F(CheckTest, Cache) {
  EXPECT_THAT(check_cache(f_, layout()), IsEmpty());
  f_.guest.domain.disk_cache.clear();
  EXPECT_CHECK(one(check_cache), kFail, "vda (cache=default) must use cache='none'");
  f_.guest.domain.readonly_disks = {"vda"};
  EXPECT_THAT(check_cache(f_, layout()), IsEmpty());
}

TEST_F(CheckTest, SharedDisks) {
  exists("/shared/g1-vda.qcow2");
  EXPECT_THAT(check_shared_disks(f_, layout()), IsEmpty());
  exists("/shared/g1-vda.qcow2", false);
  EXPECT_CHECK(one(check_shared_disks), kFail, "does not see /shared/g1-vda.qcow2 (vda)");
  f_.dest_files.files.clear();  // never looked at: not a pass
  EXPECT_CHECK(one(check_shared_disks), kFail, "cannot check: '/shared/g1-vda.qcow2' was not");
}

TEST_F(CheckTest, Leftovers) {
  f_.request.options.type = migrate::Kind::kQuick;
  std::vector<MadeFile> made = files_made(f_, layout());
  ASSERT_EQ(made.size(), 1u);
  EXPECT_TRUE(made[0].on_source);
  EXPECT_EQ(made[0].path, "/shared/g1.vmshift-state");
  f_.source_files.files["/shared/g1.vmshift-state"] = {false, ""};
  EXPECT_THAT(check_leftovers(f_, layout()), IsEmpty());
  f_.source_files.files["/shared/g1.vmshift-state"] = {true, ""};
  EXPECT_CHECK(one(check_leftovers), kFail, "/shared/g1.vmshift-state already exists");
  f_.request.options.type.reset();
  EXPECT_THAT(check_leftovers(f_, layout()), IsEmpty());  // live makes no such file
}

TEST_F(CheckTest, SavedState) {
  f_.request.options.type = migrate::Kind::kQuick;
  EXPECT_THAT(check_saved_state(f_, layout()), IsEmpty());
  f_.guest.disks.clear();
  EXPECT_CHECK(one(check_saved_state), kFail, "saves the state to storage both hosts share");
}

TEST_F(CheckTest, Backing) {
  disk_on("local");
  f_.guest.disks[0].info.backing = {"/shared/base.qcow2"};
  EXPECT_THAT(check_backing(f_, layout()), IsEmpty());  // the chain is flattened
  f_.request.options.shallow = true;
  exists("/shared/base.qcow2", false);
  EXPECT_CHECK(one(check_backing), kFail, "lacks the backing file /shared/base.qcow2 (disk vda)");
  exists("/shared/base.qcow2");
  EXPECT_CHECK(one(check_backing), kPass, "host 'host2' sees /shared/base.qcow2");
}

TEST_F(CheckTest, Disks) {
  EXPECT_CHECK(
      one([](const auto& f, const auto& l) { return check_disks(f, l, assess_copies(f, l)); }),
      kPass, "every disk stays on shared storage (vda /shared/g1-vda.qcow2)");
  disk_on("local");
  dir("/local", 1 * kGiB);
  exists("/local/g1-vda.qcow2", false);
  auto disks = [](const auto& f, const auto& l) { return check_disks(f, l, assess_copies(f, l)); };
  EXPECT_CHECK(one(disks), kPass, "copied to host 'host2': vda -> /local/g1-vda.qcow2 (40.0 MiB)");
  exists("/local/g1-vda.qcow2");
  EXPECT_CHECK(one(disks), kFail, "already has /local/g1-vda.qcow2 (disk vda) (--force replaces)");
  f_.dest_files.dirs["/local"] = {std::nullopt, "no directory"};
  EXPECT_CHECK(one(disks), kFail, "has no directory /local for disk vda");
}

// Test that a copy never lands on a file of the VM itself, seen through a
// link, nor on one of which it cannot be told, with or without --force.
TEST_F(CheckTest, DisksNeverOntoTheirOwnFile) {
  f_.request.options.storage = "local2";  // from shared storage to host2's own
  f_.request.options.force = true;
  dir("/local", 1 * kGiB);
  exists("/local/g1-vda.qcow2");
  f_.dest_files.identities["/local/g1-vda.qcow2"] = {hosts::FileIdentity{.basis = "inode"}, ""};
  auto disks = [](const auto& f, const auto& l) { return check_disks(f, l, assess_copies(f, l)); };
  std::pair<std::string, std::string> pair{"/shared/g1-vda.qcow2", "/local/g1-vda.qcow2"};
  f_.dest_files.same[pair] = {false, ""};
  EXPECT_CHECK(one(disks), kPass, "copied to host 'host2'");  // another file: --force replaces it
  f_.dest_files.same[pair] = {true, ""};
  EXPECT_CHECK(one(disks), kFail,
               "/local/g1-vda.qcow2 (disk vda) is the disk's own file '/shared/g1-vda.qcow2' "
               "(through a link)");
  f_.dest_files.same[pair] = {false, "connection reset"};
  EXPECT_CHECK(one(disks), kFail, "is the disk's own file");
  EXPECT_FALSE(assess_copies(f_, layout()).copies.at(0).replace_existing);
}

TEST_F(CheckTest, Replace) {
  disk_on("local");
  dir("/local", 1 * kGiB);
  exists("/local/g1-vda.qcow2");
  f_.request.options.force = true;
  auto replace = [](const auto& f, const auto& l) {
    return check_replace(f, l, assess_copies(f, l));
  };
  f_.dest_files.identities["/local/g1-vda.qcow2"] = {hosts::FileIdentity{.basis = "inode"}, ""};
  EXPECT_CHECK(one(replace), kWarn, "--force replaces /local/g1-vda.qcow2 on host 'host2'");
  EXPECT_TRUE(assess_copies(f_, layout()).copies.at(0).replace_existing);
  f_.dest.in_use = {{"/local/g1-vda.qcow2", "VM 'b' on host 'host2'"}};
  EXPECT_CHECK(one(replace), kFail, "VM 'b' on host 'host2' uses it");
  EXPECT_FALSE(assess_copies(f_, layout()).copies.at(0).replace_existing);
  f_.dest.in_use.clear();
  f_.dest_files.identities["/local/g1-vda.qcow2"] = {std::nullopt, "permission denied"};
  EXPECT_CHECK(one(replace), kFail, "it cannot be looked at: permission denied");
}

TEST_F(CheckTest, Space) {
  disk_on("local");
  exists("/local/g1-vda.qcow2", false);
  auto space = [](const auto& f, const auto& l) { return check_space(f, l, assess_copies(f, l)); };
  dir("/local", 1 * kGiB);
  EXPECT_CHECK(one(space), kPass, "/local on host 'host2': 1.0 GiB free");
  dir("/local", 50 * kMiB);
  EXPECT_CHECK(one(space), kFail, "/local on host 'host2' has 50.0 MiB free; vda needs");
  f_.dest_files.dirs["/local"] = {std::nullopt, ""};
  EXPECT_CHECK(one(space), kWarn, "free space in /local on host 'host2' is unknown");
  // The saved state of a QSM counts too, and a directory that cannot be
  // probed is no pass.
  f_.request.options.type = migrate::Kind::kQsm;
  dir("/local", 1 * kGiB);
  EXPECT_CHECK(one(space), kPass, "needed for vda, the saved state");
  f_.dest_files.dirs.erase("/local");
  EXPECT_CHECK(one(space), kFail, "cannot check: '/local' was not looked at");
  f_.request.options.type = migrate::Kind::kQuick;
  disk_on("shared");
  EXPECT_CHECK(one(space), kFail, "cannot check: '/shared' was not looked at");
}

TEST_F(CheckTest, ConvergenceAndTcgWrites) {
  Layout l = layout();
  migrate::Prediction p = predict_plan(f_, l, l.copies);
  EXPECT_TRUE(p.converges);
  EXPECT_THAT(check_convergence(f_, l, p), IsEmpty());
  f_.guest.dirty_bytes_per_s = 200e6;
  p = predict_plan(f_, l, l.copies);
  EXPECT_FALSE(p.converges);
  EXPECT_CHECK(one([&](const auto& f, const auto& lo) { return check_convergence(f, lo, p); }),
               kWarn, "the guest dirties 190.7 MiB/s, the link carries 119.2 MiB/s");
  f_.request.options.auto_converge = true;
  EXPECT_THAT(check_convergence(f_, l, p), IsEmpty());

  EXPECT_THAT(check_tcg_writes(f_, l), IsEmpty());
  f_.guest.domain.virt_type = "qemu";
  EXPECT_CHECK(one(check_tcg_writes), kWarn, "the guest runs under TCG");
}

// Test that the plan's prediction is its kind's model: a network
// migration's VM is off throughout, a QSM pauses for less than the whole
// move, and a VM that is off and moves live has none.
TEST_F(CheckTest, PredictPlanUsesTheKindsModel) {
  disk_on("local");
  f_.guest.state = "shut off";
  Layout l = layout();
  ASSERT_EQ(l.type, migrate::Kind::kNetwork);
  migrate::Prediction p = predict_plan(f_, l, l.copies);
  EXPECT_GT(p.total.count(), 0);
  EXPECT_EQ(p.pause, p.total);
  f_.guest.state = "running";
  f_.request.options.type = migrate::Kind::kQsm;
  l = layout();
  p = predict_plan(f_, l, l.copies);
  EXPECT_GT(p.pause.count(), 0);
  EXPECT_LT(p.pause, p.total);
  EXPECT_GT(p.disk_time.count(), 0);
  l.running = false;
  l.type = migrate::Kind::kLive;
  EXPECT_EQ(predict_plan(f_, l, {}).total.count(), 0);
}

// Test that the probes asked for are those the checks read: the files and
// directories of the copies and the other files on the destination, the
// saved state on the source, and none for an unreachable destination.
TEST_F(CheckTest, FilesToProbe) {
  f_.guest.domain.files = {"/boot/vmlinuz"};
  disk_on("local");
  f_.request.options.type = migrate::Kind::kQsm;
  f_.request.options.force = true;
  Probes p = files_to_probe(f_);
  EXPECT_TRUE(p.dest.files.count("/boot/vmlinuz"));
  EXPECT_TRUE(p.dest.files.count("/local/g1-vda.qcow2"));
  EXPECT_TRUE(p.dest.dirs.count("/local"));
  EXPECT_TRUE(p.dest.identities.count("/local/g1-vda.qcow2"));
  EXPECT_TRUE(p.source.files.count("/local/g1-vda.qcow2.vmshift-overlay.qcow2"));
  EXPECT_TRUE(p.source.files.count("/local/g1.vmshift-state"));
  EXPECT_TRUE(p.dest.files.count("/local/g1.vmshift-state"));
  f_.dest.error = "unreachable";
  p = files_to_probe(f_);
  EXPECT_TRUE(p.dest.files.empty() && p.source.files.empty());
}

// Test that plan_migration stops at a failed destination and otherwise
// makes the checks in their order.
TEST_F(CheckTest, PlanOrder) {
  exists("/shared/g1-vda.qcow2");
  MigrationPlan plan = plan_migration(f_);
  std::vector<std::string> names;
  for (const auto& c : plan.checks) names.push_back(c.name);
  EXPECT_THAT(names, ElementsAre("destination", "name", "cpu", "machine", "memory", "devices",
                                 "networks", "files", "disks"));
  EXPECT_TRUE(plan.ok()) << ::testing::PrintToString(plan.failures());
  f_.dest.error = "unreachable";
  plan = plan_migration(f_);
  ASSERT_EQ(plan.checks.size(), 1u);
  EXPECT_EQ(plan.checks[0].name, "destination");
}

}  // namespace
}  // namespace vmshift::core
