// libqmp against a real qemu-system-x86_64 (KVM where it is usable,
// TCG otherwise). Every QEMU a test starts is killed when the test ends.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "qmp/commands.h"
#include "support/qapi_schema.h"
#include "support/qemu_process.h"
#include "support/wait.h"

namespace vmshift::qmp {
namespace {

using ::testing::HasSubstr;
using vmshift::testing::QemuProcess;
using vmshift::testing::require_program;
using vmshift::testing::run_tool;
using vmshift::testing::TempDir;

Deadline soon() { return Deadline::after(std::chrono::seconds(30)); }
Deadline long_wait() { return Deadline::after(std::chrono::seconds(120)); }

std::string qemu_img() { return require_program("qemu-img", "qemu-utils"); }
std::string qemu_io() { return require_program("qemu-io", "qemu-utils"); }

void create_image(const std::string& path, const std::string& size) {
  run_tool({qemu_img(), "create", "-q", "-f", "qcow2", path, size});
}

void write_pattern(const std::string& image, int pattern, const std::string& offset,
                   const std::string& length) {
  run_tool({qemu_io(), "-c", fmt::format("write -P {} {} {}", pattern, offset, length), image});
}

// qemu-io exits non-zero when the data differs from the pattern.
bool holds_pattern(const std::string& image, int pattern, const std::string& offset,
                   const std::string& length) {
  Argv argv = {qemu_io(), "-c", fmt::format("read -P {} {} {}", pattern, offset, length), image};
  return run(argv, soon()).status.success();
}

QemuProcess::Options with_disk(const std::string& image, const std::string& node,
                               const std::string& id) {
  QemuProcess::Options o;
  o.extra_args = {"-blockdev", image_node({.node_name = node, .filename = image}).dump(), "-device",
                  fmt::format("virtio-blk-pci,drive={},id={}", node, id)};
  return o;
}

// A write through the guest device's BlockBackend, as the guest's own I/O
// would go: through any mirror filter above the disk's node.
void guest_write(Client& qmp, const std::string& device_id, int pattern, const std::string& offset,
                 const std::string& length) {
  human_monitor_command(qmp,
                        fmt::format("qemu-io -d /machine/peripheral/{}/virtio-backend \"write -P "
                                    "{} {} {}\"",
                                    device_id, pattern, offset, length),
                        soon());
}

BlockDevice device_by_id(const std::vector<BlockDevice>& devices, const std::string& id) {
  for (const auto& d : devices)
    if (d.qdev.find("/" + id + "/") != std::string::npos || d.qdev == id) return d;
  throw std::runtime_error("no block device " + id);
}

// Test that the session negotiates with a real QEMU and reports its version.
TEST(QemuQmp, NegotiatesAndControlsRunState) {
  TempDir dir;
  QemuProcess qemu(dir, {});
  Greeting g = qemu.qmp().greeting();
  RunResult version =
      run_tool({require_program("qemu-system-x86_64", "qemu-system-x86"), "--version"});
  EXPECT_THAT(version.out, HasSubstr(fmt::format("version {}.{}.{}", g.version.major,
                                                 g.version.minor, g.version.micro)));
  EXPECT_EQ(query_status(qemu.qmp(), soon()).status, "prelaunch");
  cont(qemu.qmp(), soon());
  qemu.qmp().wait_for_event("RESUME", soon());
  EXPECT_TRUE(query_status(qemu.qmp(), soon()).running);
  stop(qemu.qmp(), soon());
  qemu.qmp().wait_for_event("STOP", soon());
  RunStatus paused = query_status(qemu.qmp(), soon());
  EXPECT_EQ(paused.status, "paused");
  EXPECT_FALSE(paused.running);
  qemu.quit(soon());
}

// Test that a 64 MiB disk is mirrored to a new qcow2 target while the guest
// device writes, pivoted with block-job-complete, and that the target then
// serves the guest and holds every byte, including writes made mid-mirror.
TEST(QemuQmp, MirrorsDiskAndPivots) {
  TempDir dir;
  std::string src = dir.file("src.qcow2"), dst = dir.file("dst.qcow2");
  create_image(src, "64M");
  write_pattern(src, 0x5a, "0", "24M");
  write_pattern(src, 0xc3, "48M", "8M");
  create_image(dst, "64M");

  QemuProcess qemu(dir, with_disk(src, "src0", "vd0"));
  Client& qmp = qemu.qmp();
  cont(qmp, soon());
  blockdev_add(qmp, image_node({.node_name = "dst0", .filename = dst}), soon());
  // Throttled so the job is still copying when the guest writes below.
  blockdev_mirror(qmp,
                  {.job_id = "mirror0",
                   .device = "src0",
                   .target = "dst0",
                   .sync = MirrorSync::kFull,
                   .speed = 16 << 20},
                  soon());
  std::vector<BlockJob> copying = query_block_jobs(qmp, soon());
  ASSERT_EQ(copying.size(), 1u);
  EXPECT_FALSE(copying[0].ready);
  guest_write(qmp, "vd0", 0x11, "60M", "1M");  // while copying
  block_job_set_speed(qmp, "mirror0", 0, soon());
  auto mine = [](const Event& e) { return e.data.get_string("device") == "mirror0"; };
  Event ready = qmp.wait_for_event("BLOCK_JOB_READY", mine, long_wait());
  EXPECT_EQ(ready.data.get_int("len"), ready.data.get_int("offset"));

  std::vector<BlockJob> jobs = query_block_jobs(qmp, soon());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_TRUE(jobs[0].ready);
  EXPECT_EQ(jobs[0].type, "mirror");
  guest_write(qmp, "vd0", 0x22, "8M", "2M");  // in the ready phase: mirrored synchronously

  block_job_complete(qmp, "mirror0", soon());
  Event completed = qmp.wait_for_event("BLOCK_JOB_COMPLETED", mine, long_wait());
  EXPECT_FALSE(completed.data.has("error")) << completed.data.dump();

  BlockDevice vd0 = device_by_id(query_block(qmp, soon()), "vd0");
  ASSERT_TRUE(vd0.inserted);
  EXPECT_EQ(vd0.inserted->node_name, "dst0");
  EXPECT_EQ(vd0.inserted->file, dst);
  EXPECT_TRUE(query_block_jobs(qmp, soon()).empty());
  guest_write(qmp, "vd0", 0x33, "30M", "1M");  // after the pivot: only the target gets it
  qemu.quit(soon());

  EXPECT_TRUE(holds_pattern(dst, 0x11, "60M", "1M"));
  EXPECT_TRUE(holds_pattern(dst, 0x22, "8M", "2M"));
  EXPECT_TRUE(holds_pattern(dst, 0x33, "30M", "1M"));
  EXPECT_TRUE(holds_pattern(dst, 0x5a, "0", "8M"));
  EXPECT_TRUE(holds_pattern(dst, 0xc3, "48M", "8M"));
  EXPECT_FALSE(holds_pattern(src, 0x33, "30M", "1M"));
  // Apart from the post-pivot write, source and target are identical.
  write_pattern(src, 0x33, "30M", "1M");
  RunResult cmp = run(Argv{qemu_img(), "compare", src, dst}, soon());
  EXPECT_EQ(cmp.status.code, 0) << cmp.out << cmp.err;
}

// Test that drive-mirror creates its target, and that cancelling a ready
// mirror leaves the guest on its source.
TEST(QemuQmp, DriveMirrorCancelKeepsSource) {
  TempDir dir;
  std::string src = dir.file("src.qcow2"), dst = dir.file("copy.qcow2");
  create_image(src, "16M");
  write_pattern(src, 0x42, "0", "4M");
  QemuProcess qemu(dir, with_disk(src, "src0", "vd0"));
  Client& qmp = qemu.qmp();
  drive_mirror(qmp,
               {.job_id = "dm0",
                .device = "src0",
                .target = dst,
                .format = "qcow2",
                .sync = MirrorSync::kFull,
                .mode = NewImageMode::kAbsolutePaths},
               soon());
  auto mine = [](const Event& e) { return e.data.get_string("device") == "dm0"; };
  qmp.wait_for_event("BLOCK_JOB_READY", mine, long_wait());
  std::vector<JobInfo> jobs = query_jobs(qmp, soon());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].status, "ready");
  block_job_cancel(qmp, "dm0", /*force=*/false, soon());
  // Cancelling a ready mirror completes it without switching over.
  qmp.wait_for_event("BLOCK_JOB_COMPLETED", mine, long_wait());
  EXPECT_EQ(device_by_id(query_block(qmp, soon()), "vd0").inserted->node_name, "src0");
  qemu.quit(soon());
  EXPECT_TRUE(holds_pattern(dst, 0x42, "0", "4M"));
}

// Test an external snapshot and an active block-commit back into the base:
// the guest ends on the base image, which holds the writes made meanwhile.
TEST(QemuQmp, SnapshotThenCommitBack) {
  TempDir dir;
  std::string base = dir.file("base.qcow2"), overlay = dir.file("overlay.qcow2");
  create_image(base, "16M");
  write_pattern(base, 0x01, "0", "4M");
  QemuProcess qemu(dir, with_disk(base, "base0", "vd0"));
  Client& qmp = qemu.qmp();
  cont(qmp, soon());
  blockdev_snapshot_sync(qmp,
                         {.node_name = "base0",
                          .snapshot_file = overlay,
                          .snapshot_node_name = "overlay0",
                          .format = "qcow2"},
                         soon());
  EXPECT_EQ(device_by_id(query_block(qmp, soon()), "vd0").inserted->node_name, "overlay0");
  guest_write(qmp, "vd0", 0x02, "4M", "2M");  // lands in the overlay
  block_commit(qmp, {.job_id = "commit0", .device = "overlay0"}, soon());
  auto mine = [](const Event& e) { return e.data.get_string("device") == "commit0"; };
  qmp.wait_for_event("BLOCK_JOB_READY", mine, long_wait());
  block_job_complete(qmp, "commit0", soon());
  Event done = qmp.wait_for_event("BLOCK_JOB_COMPLETED", mine, long_wait());
  EXPECT_EQ(done.data.get_string("type"), "commit");
  EXPECT_EQ(device_by_id(query_block(qmp, soon()), "vd0").inserted->node_name, "base0");
  qemu.quit(soon());
  EXPECT_TRUE(holds_pattern(base, 0x02, "4M", "2M"));
  EXPECT_TRUE(holds_pattern(base, 0x01, "0", "4M"));
}

// Test that QEMU's own error for a bad blockdev-add arrives as a typed error
// and the session stays usable, and that blockdev-del removes a node.
TEST(QemuQmp, CommandErrorsAreTyped) {
  TempDir dir;
  QemuProcess qemu(dir, {});
  Client& qmp = qemu.qmp();
  std::string missing = dir.file("missing.qcow2");
  try {
    blockdev_add(qmp, image_node({.node_name = "m0", .filename = missing}), soon());
    FAIL() << "no error";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.command(), "blockdev-add");
    EXPECT_EQ(e.error_class(), "GenericError");
    EXPECT_THAT(e.desc(), HasSubstr(missing));
  }
  try {
    qmp.execute("no-such-command", soon());
    FAIL() << "no error";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.error_class(), "CommandNotFound");
  }
  std::string img = dir.file("n.qcow2");
  create_image(img, "1M");
  blockdev_add(qmp, image_node({.node_name = "n0", .filename = img, .read_only = true}), soon());
  std::vector<BlockNode> nodes = query_named_block_nodes(qmp, soon());
  ASSERT_EQ(nodes.size(), 2u);  // the qcow2 node and its file node
  blockdev_del(qmp, "n0", soon());
  EXPECT_TRUE(query_named_block_nodes(qmp, soon()).empty());
  qemu.quit(soon());
}

// Test a migration between two real QEMUs: capabilities, parameters,
// migrate, MIGRATION events, query-migrate figures; the destination runs.
TEST(QemuQmp, MigratesToAnotherQemu) {
  TempDir dir;
  std::string uri = "unix:" + dir.file("mig.sock");
  QemuProcess::Options dst_opts;
  dst_opts.name = "dst";
  dst_opts.start_paused = false;
  dst_opts.extra_args = {"-incoming", uri};
  QemuProcess dst(dir, dst_opts);
  QemuProcess::Options src_opts;
  src_opts.name = "src";
  QemuProcess src(dir, src_opts);
  cont(src.qmp(), soon());

  migrate_set_capabilities(src.qmp(), {{MigrationCapability::kEvents, true}}, soon());
  migrate_set_parameters(src.qmp(), {.max_bandwidth = 1LL << 30, .downtime_limit = 300}, soon());
  EXPECT_EQ(query_migrate(src.qmp(), soon()).status, "none");
  migrate(src.qmp(), uri, soon());
  auto completed = [](const Event& e) { return e.data.get_string("status") == "completed"; };
  src.qmp().wait_for_event("MIGRATION", completed, long_wait());
  MigrationInfo info = query_migrate(src.qmp(), soon());
  EXPECT_EQ(info.status, "completed");
  ASSERT_TRUE(info.ram);
  EXPECT_GT(info.ram->transferred, 0);
  EXPECT_TRUE(info.downtime.has_value());
  EXPECT_TRUE(info.total_time.has_value());
  // QEMU sends MIGRATION "completed" while it is still in finish-migrate,
  // and moves to postmigrate just after.
  std::string src_status;
  testing::wait_until(std::chrono::seconds(30), [&] {
    src_status = query_status(src.qmp(), soon()).status;
    return src_status == "postmigrate";
  });
  EXPECT_EQ(src_status, "postmigrate");
  dst.qmp().wait_for_event("RESUME", long_wait());
  EXPECT_TRUE(query_status(dst.qmp(), soon()).running);
  src.quit(soon());
  dst.quit(soon());
}

// Test that when QEMU dies, a pending wait fails at once with a connection error.
TEST(QemuQmp, QemuDeathFailsPendingWait) {
  TempDir dir;
  QemuProcess qemu(dir, {});
  qemu.kill();
  auto start = std::chrono::steady_clock::now();
  try {
    qemu.qmp().wait_for_event("BLOCK_JOB_READY", long_wait());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConnection);
    EXPECT_THAT(e.what(), HasSubstr("QMP peer hung up"));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// Test that every typed helper's arguments, with every option set, fit the
// schema of the installed QEMU (names, types, required members, enum values).
TEST(QemuQmp, TypedArgumentsMatchQemuSchema) {
  TempDir dir;
  QemuProcess qemu(dir, {});
  testing::QapiSchema schema(qemu.qmp().execute("query-qmp-schema", soon()));

  for (const auto& [command, args] : testing::every_typed_command()) {
    SCOPED_TRACE(command + " " + args.dump());
    EXPECT_THAT(schema.check_arguments(command, args), ::testing::IsEmpty());
  }
  // The validator itself catches a wrong name, a missing member and a bad enum value.
  EXPECT_THAT(schema.check_arguments("blockdev-mirror",
                                     Json::parse(R"({"device":"d","target":"t","sync":"all",)"
                                                 R"("bufsize":1})")),
              ::testing::UnorderedElementsAre(HasSubstr("'all' is not one of"),
                                              HasSubstr("does not know member 'bufsize'")));
  EXPECT_THAT(schema.check_arguments("block-job-complete", Json::object()),
              ::testing::ElementsAre("block-job-complete.device: required member missing"));
  // Commands whose arguments the helpers build internally, and the queries,
  // are executed for real by the tests above; here we check they exist.
  for (const char* c :
       {"query-status", "query-block", "query-named-block-nodes", "query-block-jobs", "query-jobs",
        "blockdev-del", "block-job-complete", "block-job-cancel", "block-job-set-speed", "stop",
        "cont", "migrate", "query-migrate", "human-monitor-command", "quit"})
    EXPECT_TRUE(schema.has_command(c)) << c;
  qemu.quit(soon());
}

}  // namespace
}  // namespace vmshift::qmp
