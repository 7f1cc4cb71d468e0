// The planner's rules (type choice, every preflight check) on whole
// migrations over fake storage, the domain facts read from recorded libvirt
// XML, host rating and the libvirt migration flags, without any host.
#include "core/planner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/error.h"
#include "core/preflight.h"
#include "hosts/domain.h"
#include "hosts/libvirt_host.h"
#include "support/fake_storage.h"

namespace vmshift::core {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

std::string data(const std::string& name) {
  std::ifstream in(std::string(VMSHIFT_TEST_DATA) + "/libvirt/" + name);
  if (!in) throw std::runtime_error("missing test data " + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* kInventory = R"(
[[host]]
name = "host1"
uri = "qemu:///one"
[[host]]
name = "host2"
uri = "qemu:///two"
peer_uri = "qemu+tcp://host2/system"
migration_address = "10.77.0.2"

[[storage]]
name = "host1-local"
path = "/var/lib/libvirt/images"
hosts = ["host1"]
[[storage]]
name = "host2-local"
path = "/var/lib/libvirt/images"
hosts = ["host2"]
[[storage]]
name = "shared"
path = "/var/lib/libvirt/shared"
hosts = ["host1", "host2"]
shared = true
[[storage]]
name = "host2-fast"
path = "/fast"
hosts = ["host2"]
)";

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;

class PlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    guest_.domain = hosts::parse_domain(data("lab-guest-live.xml"));
    guest_.state = "running";
    guest_.dirty_bytes_per_s = 1.0 * kMiB;
    guest_.source_libvirt_version = 9000000;
    dest_.host = "host2";
    dest_.peer_uri = "qemu+tcp://host2/system";
    dest_.free_memory = 4 * kGiB;
    dest_.domcaps_xml = data("domcaps-qemu-q35.xml");
    dest_.cpu_incompatible = "";
    storage_.files = {"/var/lib/libvirt/boot/vmlinuz", "/var/lib/libvirt/boot/initrd.img"};
    storage_.dirs = {{"/var/lib/libvirt/images", 3 * kGiB},
                     {"/var/lib/libvirt/shared", 10 * kGiB},
                     {"/var/lib/libvirt/consoles", 1 * kGiB},
                     {"/fast", 100 * kMiB}};
    request_.vm = guest_.domain.name;
    request_.source_host = "host1";
    request_.options.dest_host = "host2";
  }

  // The lab guest's disk vda on the given location.
  void disk_on(const std::string& location, std::uint64_t allocation = 40 * kMiB) {
    PlanDisk d;
    d.info.target = "vda";
    d.info.format = "qcow2";
    d.info.capacity = 64 * kMiB;
    d.info.allocation = allocation;
    for (const auto& s : inv_.storage())
      if (s.name == location) d.location = s;
    d.info.path = (d.location ? d.location->path : "/elsewhere") + "/g1-vda.qcow2";
    guest_.disks = {d};
    if (location == "shared") storage_.files.insert(d.info.path);
  }

  // The facts preflight would gather, the files probed on the fake
  // storage of each host.
  Facts facts() {
    Facts f;
    f.request = request_;
    f.guest = guest_;
    f.dest = dest_;
    f.link = link_;
    f.inventory = inv_;
    Probes probes = files_to_probe(f);
    f.source_files = probe_files(probes.source, *source_storage_);
    f.dest_files = probe_files(probes.dest, *dest_storage_);
    return f;
  }
  MigrationPlan plan() { return plan_migration(facts()); }

  static const Check& check(const MigrationPlan& p, const std::string& name) {
    for (const auto& c : p.checks)
      if (c.name == name) return c;
    throw std::runtime_error("no check '" + name + "' in the plan");
  }
  static bool has_check(const MigrationPlan& p, const std::string& name) {
    for (const auto& c : p.checks)
      if (c.name == name) return true;
    return false;
  }

  hosts::Inventory inv_ = hosts::Inventory::parse(kInventory, "test.toml");
  GuestView guest_;
  DestView dest_;
  testing::MemoryStorage storage_;       // the destination's files
  testing::MemoryStorage source_files_;  // the source's
  hosts::Storage* dest_storage_ = &storage_;
  hosts::Storage* source_storage_ = &source_files_;
  PlanRequest request_;
  LinkRate link_{125e6, "assumed"};
};

// Test that a running VM whose disks are all on shared storage moves live,
// every check passes, and nothing is copied.
TEST_F(PlannerTest, SharedStorageMeansLive) {
  disk_on("shared");
  MigrationPlan p = plan();
  EXPECT_EQ(p.type, migrate::Kind::kLive);
  EXPECT_THAT(p.why, HasSubstr("every disk is on storage host 'host2' shares"));
  EXPECT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());
  EXPECT_TRUE(p.live.copies.empty());
  EXPECT_EQ(p.live.shared.at("vda"), "/var/lib/libvirt/shared/g1-vda.qcow2");
  for (const char* name :
       {"destination", "name", "cpu", "machine", "memory", "devices", "networks", "files", "disks"})
    EXPECT_EQ(check(p, name).status, CheckStatus::kPass) << name << ": " << check(p, name).reason;
  EXPECT_EQ(p.live.dest_peer_uri, "qemu+tcp://host2/system");
}

// Test that a disk on local storage makes it a live VSM that copies the disk
// to the same path on the destination, with the space checked.
TEST_F(PlannerTest, LocalStorageMeansLiveVsm) {
  disk_on("host1-local");
  MigrationPlan p = plan();
  EXPECT_EQ(p.type, migrate::Kind::kLiveVsm);
  EXPECT_THAT(p.why, HasSubstr("vda (on host1-local) must be copied"));
  ASSERT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());
  ASSERT_EQ(p.live.copies.size(), 1u);
  EXPECT_EQ(p.live.copies[0].dest, "/var/lib/libvirt/images/g1-vda.qcow2");
  EXPECT_EQ(p.live.copies[0].need, 40 * kMiB);
  EXPECT_EQ(check(p, "space").status, CheckStatus::kPass);
}

// Test that --storage and --disk choose where copied disks go, and that a
// location the destination does not see, or a relative path, is refused.
TEST_F(PlannerTest, StorageAndDiskOptionsChooseTheDestination) {
  disk_on("host1-local", 10 * kMiB);
  request_.options.storage = "shared";
  MigrationPlan p = plan();
  ASSERT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());
  EXPECT_EQ(p.live.copies.at(0).dest, "/var/lib/libvirt/shared/g1-vda.qcow2");

  request_.options.storage.reset();
  request_.options.disks = {{"vda", "/fast/vda.qcow2"}};
  p = plan();
  ASSERT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());
  EXPECT_EQ(p.live.copies.at(0).dest, "/fast/vda.qcow2");

  request_.options.disks = {{"vda", "fast/vda.qcow2"}};
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("must be an absolute path")));
  request_.options.disks = {{"vdz", "/fast/vdz.qcow2"}};
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("the VM has no disk 'vdz'")));
  request_.options.disks.clear();
  request_.options.storage = "host1-local";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("host 'host2' does not see storage "
                                                    "'host1-local'")));
  request_.options.storage = "nowhere";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("no storage location 'nowhere'")));
}

// Test that shared-storage disks asked to move (--storage) make a live VSM
// even though the destination sees them.
TEST_F(PlannerTest, MovingSharedDisksIsLiveVsm) {
  disk_on("shared");
  request_.options.storage = "host2-local";
  MigrationPlan p = plan();
  EXPECT_EQ(p.type, migrate::Kind::kLiveVsm);
  ASSERT_EQ(p.live.copies.size(), 1u);
  EXPECT_EQ(p.live.copies[0].dest, "/var/lib/libvirt/images/g1-vda.qcow2");
}

// Test that --shallow copies only the top layer (its allocation alone) and
// needs the backing files on the destination; without it the chain is
// flattened into the copy.
TEST_F(PlannerTest, ShallowNeedsTheBackingChainThere) {
  disk_on("host1-local", 10 * kMiB);
  guest_.disks[0].info.backing = {"/var/lib/libvirt/shared/base.qcow2"};
  guest_.disks[0].info.backing_format = "qcow2";
  guest_.disks[0].chain_allocation = 500 * kMiB;
  MigrationPlan full = plan();
  ASSERT_TRUE(full.ok()) << ::testing::PrintToString(full.failures());
  EXPECT_EQ(full.live.copies.at(0).need, 510 * kMiB);
  EXPECT_FALSE(has_check(full, "backing"));

  request_.options.shallow = true;
  MigrationPlan top = plan();
  EXPECT_EQ(top.live.copies.at(0).need, 10 * kMiB);
  EXPECT_EQ(top.live.copies.at(0).backing_format, "qcow2");
  EXPECT_EQ(check(top, "backing").reason,
            "--shallow copies only the top layer, but host 'host2' lacks the backing file "
            "/var/lib/libvirt/shared/base.qcow2 (disk vda)");
  storage_.files.insert("/var/lib/libvirt/shared/base.qcow2");
  top = plan();
  EXPECT_TRUE(top.ok()) << ::testing::PrintToString(top.failures());
  EXPECT_EQ(check(top, "backing").status, CheckStatus::kPass);
}

// Test that a shut-off VM is planned as a network migration, which this
// version cannot run yet, and that forced types are refused with a reason.
TEST_F(PlannerTest, TypeChoiceAndForcedTypes) {
  disk_on("host1-local");
  guest_.state = "shut off";
  MigrationPlan p = plan();
  EXPECT_EQ(p.type, migrate::Kind::kNetwork);
  EXPECT_THAT(p.why, HasSubstr("shut off"));
  EXPECT_EQ(check(p, "memory").status, CheckStatus::kPass);

  request_.options.type = migrate::Kind::kLive;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("--type live needs a running VM")));

  guest_.state = "running";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("host 'host2' does not see vda (on "
                                                    "host1-local): use --type live-vsm")));
  request_.options.type = migrate::Kind::kNetwork;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("--type network moves a stopped VM")));
  // An unknown name is refused when --type is parsed (CliTest.UnknownTypeIsRefused); a
  // job type `migrate` does not run is refused by the plan.
  request_.options.type = migrate::Kind::kCopy;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("unknown transfer type 'copy'")));
  request_.options.type = migrate::Kind::kLiveStorage;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("unknown transfer type 'live-storage' "
                                                    "(known: live, live-vsm, quick, qsm, "
                                                    "network)")));
  request_.options.type = migrate::Kind::kLiveVsm;
  disk_on("shared");
  p = plan();
  EXPECT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());
  EXPECT_EQ(p.type, migrate::Kind::kLiveVsm);
  EXPECT_THAT(p.why, HasSubstr("--type live-vsm (the automatic choice would be live)"));

  guest_.state = "crashed";
  request_.options.type.reset();
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("the VM is crashed")));
}

// Test that a VM of the same name or UUID on the destination is refused.
TEST_F(PlannerTest, NameConflict) {
  disk_on("shared");
  dest_.domain_names = {"other", "g1"};
  EXPECT_THAT(plan().failures(), Contains("name: host 'host2' already has a VM named 'g1'"));
  dest_.domain_names = {"other"};
  dest_.domain_uuids = {guest_.domain.uuid};
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("already has a VM with UUID")));
}

// Test that too little space in a destination directory is refused with the
// figures, and that an existing destination file is refused unless --force.
TEST_F(PlannerTest, SpaceAndExistingFiles) {
  disk_on("host1-local", 500 * kMiB);
  storage_.dirs["/var/lib/libvirt/images"] = 100 * kMiB;
  MigrationPlan p = plan();
  EXPECT_EQ(check(p, "space").status, CheckStatus::kFail);
  EXPECT_THAT(check(p, "space").reason,
              HasSubstr("/var/lib/libvirt/images on host 'host2' has 100.0 MiB free; vda needs"));
  storage_.dirs["/var/lib/libvirt/images"] = 3 * kGiB;
  storage_.files.insert("/var/lib/libvirt/images/g1-vda.qcow2");
  EXPECT_THAT(plan().failures(),
              Contains(HasSubstr("already has /var/lib/libvirt/images/g1-vda.qcow2 (disk vda)")));
  request_.options.force = true;
  p = plan();
  EXPECT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());
  EXPECT_TRUE(p.live.copies.at(0).replace_existing);
  request_.options.force = false;
  storage_.dirs.erase("/var/lib/libvirt/images");
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("has no directory /var/lib/libvirt/images")));
}

// Test that a QSM to the storage location the disk already lives in (same
// host) is refused, with or without --force: the destination is the disk's
// own file.
TEST_F(PlannerTest, QsmOntoItsOwnFileIsRefused) {
  disk_on("host1-local");
  dest_.host = "host1";
  request_.options.dest_host = "host1";
  request_.options.type = migrate::Kind::kQsm;
  request_.options.storage = "host1-local";
  storage_.files.insert("/var/lib/libvirt/images/g1-vda.qcow2");
  request_.options.force = true;
  MigrationPlan p = plan();
  EXPECT_FALSE(p.ok());
  EXPECT_THAT(p.failures(), Contains(HasSubstr("is the disk's own file")));
  request_.options.force = false;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("is the disk's own file")));
}

// Test that --force never replaces a file a defined VM uses on a host that
// sees the storage (live VSM onto shared storage), names that VM, and that
// a plan that does replace a file says which.
TEST_F(PlannerTest, ForceNeverReplacesAFileInUse) {
  disk_on("host1-local");
  request_.options.storage = "shared";
  request_.options.force = true;
  storage_.files.insert("/var/lib/libvirt/shared/g1-vda.qcow2");
  dest_.in_use = {{"/var/lib/libvirt/shared/g1-vda.qcow2", "VM 'other' on host 'host1'"}};
  MigrationPlan p = plan();
  EXPECT_THAT(p.failures(), Contains(HasSubstr("VM 'other' on host 'host1' uses it")));
  dest_.in_use.clear();
  dest_.in_use_error = "host 'host1' does not answer";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("host 'host1' does not answer")));
  dest_.in_use_error.clear();
  p = plan();
  EXPECT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());
  EXPECT_TRUE(p.live.copies.at(0).replace_existing);
  EXPECT_THAT(check(p, "replace").reason,
              HasSubstr("--force replaces /var/lib/libvirt/shared/g1-vda.qcow2 on host 'host2'"));
}

// Test that a shared disk the destination does not actually see, a cached
// shared disk, and missing kernel or log directory are refused.
TEST_F(PlannerTest, FilesTheDestinationMustSee) {
  disk_on("shared");
  storage_.files.erase("/var/lib/libvirt/shared/g1-vda.qcow2");
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("does not see /var/lib/libvirt/shared/"
                                                    "g1-vda.qcow2 (vda)")));
  storage_.files.insert("/var/lib/libvirt/shared/g1-vda.qcow2");
  guest_.domain.disk_cache["vda"] = "writeback";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("vda (cache=writeback) must use "
                                                    "cache='none'")));
  guest_.domain.disk_cache["vda"] = "none";
  storage_.files.erase("/var/lib/libvirt/boot/initrd.img");
  storage_.dirs.erase("/var/lib/libvirt/consoles");
  MigrationPlan p = plan();
  EXPECT_EQ(check(p, "files").status, CheckStatus::kFail);
  EXPECT_THAT(check(p, "files").reason, HasSubstr("/var/lib/libvirt/boot/initrd.img"));
  EXPECT_THAT(check(p, "files").reason, HasSubstr("/var/lib/libvirt/consoles/"));
}

// Storage whose probes of some paths fail (a host that stops answering,
// a permission error): exists() throws for them.
class BrokenStorage : public testing::MemoryStorage {
 public:
  std::set<std::string> broken;
  bool exists(const std::string& path) override {
    if (broken.count(path) > 0)
      throw Error(ErrorCode::kIo, "cannot look up '" + path + "': connection reset");
    return testing::MemoryStorage::exists(path);
  }
};

// Test that a probe that fails makes its check fail with "cannot check",
// never pass as if the file were not there: the QSM leftovers (source and
// destination), the backing files, the destination files and the shared
// disks.
TEST_F(PlannerTest, ProbesThatFailDoNotPass) {
  BrokenStorage src, dst;
  dst.files = storage_.files;
  dst.dirs = storage_.dirs;
  dest_storage_ = &dst;
  source_storage_ = &src;
  disk_on("host1-local");
  request_.options.type = migrate::Kind::kQsm;
  MigrationPlan p = plan();
  ASSERT_TRUE(p.ok()) << ::testing::PrintToString(p.failures());

  src.broken = {"/var/lib/libvirt/images/g1-vda.qcow2.vmshift-overlay.qcow2"};
  p = plan();
  EXPECT_EQ(check(p, "leftovers").status, CheckStatus::kFail);
  EXPECT_THAT(check(p, "leftovers").reason,
              HasSubstr("cannot check: cannot look up "
                        "'/var/lib/libvirt/images/g1-vda.qcow2.vmshift-overlay.qcow2'"));
  src.broken.clear();
  dst.broken = {"/var/lib/libvirt/images/g1.vmshift-state"};
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("leftovers: cannot check: cannot look up "
                                                    "'/var/lib/libvirt/images/g1.vmshift-state'")));

  // The destination file itself.
  dst.broken = {"/var/lib/libvirt/images/g1-vda.qcow2"};
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("disks: cannot check: cannot look up "
                                                    "'/var/lib/libvirt/images/g1-vda.qcow2'")));

  // A backing file of a disk whose top layer alone moves.
  guest_.disks[0].info.backing = {"/var/lib/libvirt/shared/base.qcow2"};
  dst.broken = {"/var/lib/libvirt/shared/base.qcow2"};
  p = plan();
  EXPECT_EQ(check(p, "backing").status, CheckStatus::kFail);
  EXPECT_THAT(check(p, "backing").reason,
              HasSubstr("cannot check: cannot look up '/var/lib/libvirt/shared/base.qcow2'"));
  EXPECT_THAT(check(p, "backing").reason, Not(HasSubstr("lacks")));

  // A shared disk, live.
  request_.options.type.reset();
  disk_on("shared");
  dst.files.insert("/var/lib/libvirt/shared/g1-vda.qcow2");
  dst.broken = {"/var/lib/libvirt/shared/g1-vda.qcow2"};
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("storage: cannot check: cannot look up "
                                                    "'/var/lib/libvirt/shared/g1-vda.qcow2'")));

  // Another file the VM needs there.
  dst.broken = {"/var/lib/libvirt/boot/vmlinuz"};
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("files: cannot check: cannot look up "
                                                    "'/var/lib/libvirt/boot/vmlinuz'")));
}

// Test that a VM with firmware state (NVRAM) or a vTPM is refused for the
// transfer types that do not carry it to another host (qsm, quick,
// network), with the files named; that live types and moves on the same
// host are not refused.
TEST_F(PlannerTest, FirmwareStateRefusedWhereItWouldBeLeftBehind) {
  disk_on("host1-local");
  guest_.domain.nvram = "/var/lib/libvirt/qemu/nvram/g1_VARS.fd";
  storage_.files.insert(guest_.domain.nvram);
  request_.options.type = migrate::Kind::kQsm;
  MigrationPlan p = plan();
  EXPECT_EQ(check(p, "firmware").status, CheckStatus::kFail);
  EXPECT_THAT(check(p, "firmware").reason,
              HasSubstr("NVRAM /var/lib/libvirt/qemu/nvram/g1_VARS.fd on host 'host1'"));
  EXPECT_THAT(check(p, "firmware").reason, HasSubstr("a qsm migration does not copy"));

  guest_.domain.nvram.clear();
  guest_.domain.tpm_state = true;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("firmware: the VM keeps its vTPM state")));

  guest_.domain.nvram = "/var/lib/libvirt/qemu/nvram/g1_VARS.fd";
  guest_.state = "shut off";
  request_.options.type.reset();
  p = plan();
  EXPECT_EQ(p.type, migrate::Kind::kNetwork);
  EXPECT_THAT(p.failures(), Contains(HasSubstr("a network migration does not copy")));

  disk_on("shared");
  guest_.state = "running";
  request_.options.type = migrate::Kind::kQuick;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("a quick migration does not copy")));

  // Live migration carries both in its stream: not refused.
  request_.options.type.reset();
  p = plan();
  EXPECT_EQ(p.type, migrate::Kind::kLive);
  EXPECT_FALSE(has_check(p, "firmware"));

  // On its own host the VM keeps its definition and its firmware files.
  disk_on("host1-local");
  request_.options.type = migrate::Kind::kQsm;
  request_.options.dest_host = "host1";
  request_.options.storage = "host1-local";
  dest_.host = "host1";
  guest_.disks[0].info.path = "/elsewhere/g1-vda.qcow2";
  p = plan();
  EXPECT_EQ(check(p, "firmware").status, CheckStatus::kPass);
}

// Test that too little free memory fails and little headroom warns.
TEST_F(PlannerTest, Memory) {
  disk_on("shared");
  dest_.free_memory = 100 * kMiB;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("host 'host2' has 100.0 MiB free; the VM "
                                                    "needs 192.0 MiB")));
  dest_.free_memory = 300 * kMiB;
  EXPECT_EQ(check(plan(), "memory").status, CheckStatus::kWarn);
}

// Test that an unreachable destination is the only check, and that the
// VM's own host is refused as a destination.
TEST_F(PlannerTest, DestinationUnreachableOrSame) {
  disk_on("shared");
  dest_.error = "cannot connect to host 'host2': Connection refused";
  MigrationPlan p = plan();
  EXPECT_FALSE(p.ok());
  EXPECT_THAT(p.failures(), Contains("destination: cannot connect to host 'host2': Connection "
                                     "refused"));
  EXPECT_FALSE(has_check(p, "memory"));
  dest_.error.clear();
  request_.source_host = "host2";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("the VM is already on host 'host2'")));
}

// Test that the machine type and emulator check carries libvirt's reason.
TEST_F(PlannerTest, MachineTypeUnsupported) {
  disk_on("shared");
  dest_.domcaps_error = "host 'host2' cannot run a qemu guest of machine type pc-q35-9.9";
  EXPECT_THAT(plan().failures(), Contains("machine: host 'host2' cannot run a qemu guest of "
                                          "machine type pc-q35-9.9"));
}

// Test the CPU check on the recorded domain capabilities: a model the
// destination lists as usable passes, one it lists as unusable or does not
// know fails, with the missing features when libvirt names them, and
// libvirt's own comparison overrides.
TEST_F(PlannerTest, CpuModels) {
  hosts::DomainFacts d = guest_.domain;
  EXPECT_EQ(d.cpu_model, "qemu64");
  EXPECT_EQ(check_cpu(d, dest_).status, CheckStatus::kPass);
  d.cpu_model = "phenom";  // usable='no' in the recorded capabilities
  Check c = check_cpu(d, dest_);
  EXPECT_EQ(c.status, CheckStatus::kFail);
  EXPECT_EQ(c.reason, "the CPU model phenom is not usable on host 'host2'");
  d.cpu_model = "Cascadelake-Imaginary";
  EXPECT_THAT(check_cpu(d, dest_).reason, HasSubstr("does not know the CPU model"));

  DestView with_blockers = dest_;
  with_blockers.domcaps_xml =
      "<domainCapabilities><cpu><mode name='custom' supported='yes'>"
      "<model usable='no' vendor='Intel'>Skylake-Client</model>"
      "<blockers model='Skylake-Client'><feature name='avx2'/><feature name='rtm'/></blockers>"
      "</mode></cpu></domainCapabilities>";
  d.cpu_model = "Skylake-Client";
  EXPECT_EQ(check_cpu(d, with_blockers).reason,
            "the CPU model Skylake-Client is not usable on host 'host2' (missing: avx2, rtm)");

  d.cpu_model = "qemu64";
  dest_.cpu_incompatible = "Host CPU does not provide required features: svm";
  EXPECT_THAT(check_cpu(d, dest_).reason, HasSubstr("does not provide required features: svm"));
  d.cpu_mode = "host-passthrough";
  EXPECT_EQ(check_cpu(d, dest_).status, CheckStatus::kFail);
  dest_.cpu_incompatible = "";
  EXPECT_EQ(check_cpu(d, dest_).status, CheckStatus::kWarn);
  d.cpu_mode = "";
  EXPECT_EQ(check_cpu(d, dest_).status, CheckStatus::kPass);
}

// Test that devices that cannot migrate, missing networks and interfaces
// are each named.
TEST_F(PlannerTest, DevicesAndNetworks) {
  disk_on("shared");
  hosts::DomainFacts busy = hosts::parse_domain(data("busy-guest.xml"));
  guest_.domain.blockers = busy.blockers;
  guest_.domain.networks = busy.networks;
  guest_.domain.bridges = busy.bridges;
  dest_.networks = {{"default", false}};
  dest_.interfaces = std::vector<std::string>{"eth0", "lo"};
  MigrationPlan p = plan();
  EXPECT_THAT(check(p, "devices").reason, HasSubstr("1 host device is passed through"));
  EXPECT_THAT(check(p, "devices").reason, HasSubstr("invtsc"));
  EXPECT_EQ(check(p, "networks").reason,
            "host 'host2' lacks interface 'br0'; inactive: network 'default'");
  dest_.networks = {{"default", true}};
  dest_.interfaces.reset();
  EXPECT_EQ(check(plan(), "networks").status, CheckStatus::kWarn);
  dest_.interfaces = std::vector<std::string>{"br0"};
  EXPECT_EQ(check(plan(), "networks").status, CheckStatus::kPass);
}

// Test that TCG guests are refused post-copy and suspend-on-timeout, that
// zstd needs libvirt 9.4, and that a guest outrunning the link warns.
TEST_F(PlannerTest, OptionsTheHostsCannotDoSafely) {
  disk_on("shared");
  request_.options.postcopy = true;
  EXPECT_THAT(plan().failures(),
              Contains(HasSubstr("--postcopy is refused for a guest under TCG")));
  guest_.domain.virt_type = "kvm";
  EXPECT_TRUE(plan().ok());
  EXPECT_EQ(check(plan(), "postcopy").status, CheckStatus::kPass);
  guest_.domain.virt_type = "qemu";
  request_.options.postcopy = false;
  request_.options.timeout_action = "suspend";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("--timeout-action suspend is refused")));
  request_.options.timeout_action = "abort";

  request_.options.compress = "zstd";
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("zstd over multifd needs libvirt 9.4")));
  guest_.source_libvirt_version = 9004000;
  EXPECT_TRUE(plan().ok());
  request_.options.compress = "xbzrle";
  guest_.source_libvirt_version = 9000000;
  EXPECT_EQ(check(plan(), "tcg").status, CheckStatus::kWarn);
  EXPECT_EQ(check(plan(), "compress").reason, "memory compressed with xbzrle");

  guest_.dirty_bytes_per_s = 200e6;  // more than the 125 MB/s link
  MigrationPlan p = plan();
  EXPECT_EQ(check(p, "convergence").status, CheckStatus::kWarn);
  EXPECT_FALSE(p.live.prediction.converges);
  request_.options.auto_converge = true;
  EXPECT_FALSE(has_check(plan(), "convergence"));
}

// Test that ratings give 0 stars with the failures, 5 for a clean plan,
// and fewer for warnings, little memory left and a slow move.
TEST_F(PlannerTest, Rating) {
  disk_on("shared");
  guest_.domain.virt_type = "kvm";  // no TCG warning
  MigrationPlan p = plan();
  Rating r = rate_plan(p, dest_, guest_.domain.memory_bytes, p.live.prediction.total.count());
  EXPECT_EQ(r.stars, 5);
  EXPECT_THAT(r.reason, HasSubstr("live"));
  r = rate_plan(p, dest_, guest_.domain.memory_bytes, p.live.prediction.total.count() / 3);
  EXPECT_EQ(r.stars, 4);
  EXPECT_THAT(r.reason, HasSubstr("slower"));
  dest_.free_memory = 300 * kMiB;
  p = plan();
  r = rate_plan(p, dest_, guest_.domain.memory_bytes, 0);
  EXPECT_EQ(r.stars, 3);  // the memory warning, and little left afterwards
  dest_.domain_names = {"g1"};
  r = rate_plan(plan(), dest_, guest_.domain.memory_bytes, 0);
  EXPECT_EQ(r.stars, 0);
  EXPECT_THAT(r.reason, HasSubstr("cannot: name: host 'host2' already has a VM named 'g1'"));
}

// Test the domain facts read from a recorded lab guest and from a guest
// with every kind of device the planner cares about.
TEST(DomainFacts, RecordedXml) {
  hosts::DomainFacts lab = hosts::parse_domain(data("lab-guest-live.xml"));
  EXPECT_EQ(lab.name, "g1");
  EXPECT_EQ(lab.virt_type, "qemu");
  EXPECT_EQ(lab.memory_bytes, 192 * kMiB);
  EXPECT_EQ(lab.machine, "pc-q35-7.2");
  EXPECT_EQ(lab.emulator, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(lab.cpu_mode, "custom");
  EXPECT_THAT(lab.cpu_xml, HasSubstr("<model fallback=\"forbid\">qemu64</model>"));
  EXPECT_THAT(lab.files, Contains("/var/lib/libvirt/boot/vmlinuz"));
  EXPECT_THAT(lab.file_dirs, Contains("/var/lib/libvirt/consoles"));
  EXPECT_TRUE(lab.blockers.empty());
  EXPECT_EQ(lab.disk_cache.at("vda"), "none");

  hosts::DomainFacts busy = hosts::parse_domain(data("busy-guest.xml"));
  EXPECT_EQ(busy.memory_bytes, 2 * kGiB);  // currentMemory, not memory
  EXPECT_EQ(busy.vcpus, 2);
  EXPECT_EQ(busy.cpu_model, "Skylake-Client");
  EXPECT_THAT(busy.files, Contains("/usr/share/OVMF/OVMF_CODE_4M.fd"));
  EXPECT_THAT(busy.files, Contains("/var/lib/libvirt/qemu/nvram/busy_VARS.fd"));
  EXPECT_EQ(busy.nvram, "/var/lib/libvirt/qemu/nvram/busy_VARS.fd");
  EXPECT_FALSE(busy.tpm_state);
  EXPECT_EQ(lab.nvram, "");
  EXPECT_FALSE(lab.tpm_state);
  EXPECT_THAT(busy.files, Contains("/srv/iso/debian.iso"));
  EXPECT_THAT(busy.files, Not(Contains("/srv/vm/busy-vda.qcow2")));
  EXPECT_THAT(busy.file_dirs, Contains("/var/log/vm"));
  EXPECT_EQ(busy.networks, std::vector<std::string>{"default"});
  EXPECT_EQ(busy.bridges, std::vector<std::string>{"br0"});
  EXPECT_EQ(busy.host_devs, std::vector<std::string>{"eno1"});
  EXPECT_EQ(busy.blockers.size(), 2u);
  EXPECT_EQ(busy.disk_cache.at("vdb"), "");
  EXPECT_EQ(busy.readonly_disks, std::vector<std::string>{"vdb"});
  EXPECT_THROW(hosts::parse_domain("<pool/>"), Error);
}

// Test that firmware state is read from the definition: a vTPM whose
// state swtpm keeps on the host, UEFI firmware that libvirt gives NVRAM.
TEST(DomainFacts, FirmwareState) {
  hosts::DomainFacts tpm = hosts::parse_domain(
      "<domain type='kvm'><name>t</name><os><type arch='x86_64'>hvm</type></os><devices>"
      "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm></devices></domain>");
  EXPECT_TRUE(tpm.tpm_state);
  EXPECT_EQ(tpm.nvram, "");
  hosts::DomainFacts passthrough = hosts::parse_domain(
      "<domain type='kvm'><name>t</name><devices><tpm model='tpm-tis'><backend "
      "type='passthrough'><device path='/dev/tpm0'/></backend></tpm></devices></domain>");
  EXPECT_FALSE(passthrough.tpm_state);
  hosts::DomainFacts efi = hosts::parse_domain(
      "<domain type='kvm'><name>e</name><os firmware='efi'><type arch='x86_64'>hvm</type></os>"
      "</domain>");
  EXPECT_EQ(efi.nvram, "/var/lib/libvirt/qemu/nvram/e_VARS.fd");  // libvirt's default
}

// Test that disk paths are rewritten and the old backing chain dropped.
TEST(DomainFacts, RewriteDiskPaths) {
  std::string xml =
      "<domain><devices><disk type='file' device='disk'><source file='/a/vda.qcow2'/>"
      "<backingStore type='file'><source file='/a/base.qcow2'/></backingStore>"
      "<target dev='vda'/></disk></devices></domain>";
  std::string out = hosts::rewrite_disk_paths(xml, {{"vda", "/b/vda.qcow2"}});
  EXPECT_THAT(out, HasSubstr("<source file=\"/b/vda.qcow2\"/>"));
  EXPECT_THAT(out, Not(HasSubstr("base.qcow2")));
  EXPECT_THROW(hosts::rewrite_disk_paths(xml, {{"vdb", "/b/vdb.qcow2"}}), Error);
}

// Test link rates in the tc notation.
TEST(LinkRate, Parse) {
  EXPECT_EQ(hosts::parse_link_rate("1gbit"), 125e6);
  EXPECT_EQ(hosts::parse_link_rate("200mbit"), 25e6);
  EXPECT_EQ(hosts::parse_link_rate("2.5gbit"), 312.5e6);
  EXPECT_EQ(hosts::parse_link_rate("1GB"), std::nullopt);
  EXPECT_EQ(hosts::parse_link_rate("mbit"), std::nullopt);
  EXPECT_EQ(hosts::parse_link_rate("0mbit"), std::nullopt);
}

// Test the libvirt flags and typed parameters a migration request becomes.
TEST(MigrationRequest, FlagsAndParameters) {
  hosts::MigrationRequest r;
  r.dest_peer_uri = "qemu+tcp://host2/system";
  r.migrate_uri = "tcp://10.77.0.2";
  unsigned int base = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
                      VIR_MIGRATE_UNDEFINE_SOURCE | VIR_MIGRATE_ABORT_ON_ERROR;
  EXPECT_EQ(hosts::migration_flags(r), base);
  EXPECT_EQ(hosts::migration_params(r), std::vector<std::string>{"migrate_uri=tcp://10.77.0.2"});

  r.copy_disks = {"vda", "vdb"};
  r.dest_xml = "<domain/>";
  r.bandwidth = 100 * kMiB;
  r.compression = "xbzrle";
  r.parallel = 4;
  r.auto_converge = true;
  r.postcopy = true;
  r.tls = true;
  r.shared_storage_vouched = true;
  r.copy_top_only = true;
  EXPECT_EQ(hosts::migration_flags(r) & VIR_MIGRATE_NON_SHARED_DISK, 0u);
  EXPECT_NE(hosts::migration_flags(r) & VIR_MIGRATE_NON_SHARED_INC, 0u);
  r.copy_top_only = false;
  EXPECT_EQ(hosts::migration_flags(r), base | VIR_MIGRATE_NON_SHARED_DISK |
                                           VIR_MIGRATE_AUTO_CONVERGE | VIR_MIGRATE_POSTCOPY |
                                           VIR_MIGRATE_TLS | VIR_MIGRATE_PARALLEL |
                                           VIR_MIGRATE_COMPRESSED | VIR_MIGRATE_UNSAFE);
  EXPECT_EQ(hosts::migration_params(r),
            (std::vector<std::string>{"migrate_uri=tcp://10.77.0.2", "destination_xml=<domain/>",
                                      "migrate_disks=vda", "migrate_disks=vdb", "bandwidth=100",
                                      "compression=xbzrle", "parallel.connections=4"}));
}

// Test that a live migration refuses a bandwidth libvirt cannot take (it
// limits a migration in whole MiB/s only) instead of rounding it, and that
// copies take any rate.
TEST_F(PlannerTest, BandwidthLibvirtCannotHonourIsRefused) {
  disk_on("shared");
  request_.options.bandwidth = kMiB / 2;
  MigrationPlan p = plan();
  EXPECT_EQ(p.type, migrate::Kind::kLive);
  EXPECT_EQ(check(p, "bandwidth").status, CheckStatus::kFail);
  EXPECT_EQ(check(p, "bandwidth").reason,
            "--bandwidth 0.5 MiB/s: libvirt limits a live migration in whole MiB/s only; give a "
            "whole number");
  request_.options.bandwidth = 3 * kMiB / 2;
  EXPECT_THAT(plan().failures(), Contains(HasSubstr("--bandwidth 1.5 MiB/s")));
  request_.options.bandwidth = 2 * kMiB;
  EXPECT_TRUE(plan().ok()) << ::testing::PrintToString(plan().failures());
  EXPECT_FALSE(has_check(plan(), "bandwidth"));

  disk_on("host1-local");  // live-vsm: the disks go with the memory, over libvirt
  request_.options.bandwidth = kMiB / 2;
  EXPECT_EQ(plan().type, migrate::Kind::kLiveVsm);
  EXPECT_EQ(check(plan(), "bandwidth").status, CheckStatus::kFail);

  request_.options.type = migrate::Kind::kQsm;  // a copy vmshift paces itself: any rate
  EXPECT_FALSE(has_check(plan(), "bandwidth"));
}

// Test that a migration bandwidth reaches libvirt as whole MiB/s, and that
// one libvirt cannot take (it has no bytes/s flavour) is refused, not
// rounded.
TEST(MigrationRequest, BandwidthInWholeMiBOnly) {
  hosts::MigrationRequest r;
  r.bandwidth = 1 * kMiB;
  EXPECT_EQ(hosts::migration_params(r), std::vector<std::string>{"bandwidth=1"});
  EXPECT_EQ(hosts::migration_bandwidth_mib(7 * kMiB), 7u);
  for (std::uint64_t bytes : {kMiB / 2, 3 * kMiB / 2, kMiB + 1, std::uint64_t{1}}) {
    r.bandwidth = bytes;
    try {
      hosts::migration_params(r);
      ADD_FAILURE() << bytes << " bytes/s reached libvirt";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_THAT(e.what(), HasSubstr("libvirt limits a migration in whole MiB/s only"));
    }
  }
  r.bandwidth = kMiB / 2;
  EXPECT_THAT([&] { hosts::migration_params(r); },
              ::testing::ThrowsMessage<Error>(HasSubstr("0.5 MiB/s cannot be honoured")));
}

}  // namespace
}  // namespace vmshift::core
