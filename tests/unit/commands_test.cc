#include "qmp/commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/fake_qmp_peer.h"
#include "support/qapi_schema.h"

#ifndef VMSHIFT_TEST_DATA
#error "VMSHIFT_TEST_DATA must name tests/data"
#endif

namespace vmshift::qmp {
namespace {

using vmshift::testing::FakeQmpPeer;

Deadline soon() { return Deadline::after(std::chrono::seconds(10)); }

// Test that a fully specified blockdev-mirror builds the schema's argument names.
TEST(Commands, BlockdevMirrorArguments) {
  BlockdevMirrorArgs a;
  a.job_id = "m0";
  a.device = "src0";
  a.target = "dst0";
  a.replaces = "src0";
  a.sync = MirrorSync::kTop;
  a.speed = 1000;
  a.granularity = 65536;
  a.buf_size = 1 << 20;
  a.on_source_error = OnError::kStop;
  a.on_target_error = OnError::kReport;
  a.filter_node_name = "mf0";
  a.copy_mode = MirrorCopyMode::kWriteBlocking;
  a.auto_finalize = false;
  a.auto_dismiss = false;
  EXPECT_EQ(to_arguments(a).dump(),
            R"({"job-id":"m0","device":"src0","target":"dst0","replaces":"src0","sync":"top",)"
            R"("speed":1000,"granularity":65536,"buf-size":1048576,"on-source-error":"stop",)"
            R"("on-target-error":"report","filter-node-name":"mf0","copy-mode":"write-blocking",)"
            R"("auto-finalize":false,"auto-dismiss":false})");
}

// Test that optional arguments left unset are not sent.
TEST(Commands, UnsetOptionalsAreOmitted) {
  EXPECT_EQ(to_arguments(BlockdevMirrorArgs{.device = "a", .target = "b"}).dump(),
            R"({"device":"a","target":"b","sync":"full"})");
  EXPECT_EQ(to_arguments(MigrationParameters{}).dump(), "{}");
}

// Test the drive-mirror, block-commit and snapshot builders.
TEST(Commands, OtherBuilders) {
  DriveMirrorArgs dm{.device = "drive0",
                     .target = "/img/new.qcow2",
                     .format = "qcow2",
                     .sync = MirrorSync::kFull,
                     .mode = NewImageMode::kExisting,
                     .unmap = true};
  EXPECT_EQ(to_arguments(dm).dump(),
            R"({"device":"drive0","target":"/img/new.qcow2","format":"qcow2","sync":"full",)"
            R"("mode":"existing","unmap":true})");
  BlockCommitArgs bc{.job_id = "c0",
                     .device = "top0",
                     .base_node = "base0",
                     .on_error = OnError::kReport,
                     .auto_dismiss = false};
  EXPECT_EQ(to_arguments(bc).dump(),
            R"({"job-id":"c0","device":"top0","base-node":"base0","on-error":"report",)"
            R"("auto-dismiss":false})");
  SnapshotSyncArgs ss{.node_name = "disk0",
                      .snapshot_file = "/img/ov.qcow2",
                      .snapshot_node_name = "ov0",
                      .format = "qcow2",
                      .mode = NewImageMode::kAbsolutePaths};
  EXPECT_EQ(to_arguments(ss).dump(),
            R"({"node-name":"disk0","snapshot-file":"/img/ov.qcow2","snapshot-node-name":"ov0",)"
            R"("format":"qcow2","mode":"absolute-paths"})");
  MigrationParameters mp{.max_bandwidth = 125000000,
                         .downtime_limit = 300,
                         .multifd_channels = 4,
                         .multifd_compression = MultifdCompression::kZstd};
  EXPECT_EQ(to_arguments(mp).dump(),
            R"({"max-bandwidth":125000000,"downtime-limit":300,"multifd-channels":4,)"
            R"("multifd-compression":"zstd"})");
}

// Test that snapshot arguments need exactly one of device and node-name.
TEST(Commands, SnapshotNeedsOneTarget) {
  EXPECT_THROW(to_arguments(SnapshotSyncArgs{.snapshot_file = "/x"}), Error);
  EXPECT_THROW(
      to_arguments(SnapshotSyncArgs{.device = "a", .node_name = "b", .snapshot_file = "/x"}),
      Error);
}

// Test the BlockdevOptions built for an image file.
TEST(Commands, ImageNode) {
  EXPECT_EQ(
      image_node({.node_name = "t0", .filename = "/i/t.qcow2"}).dump(),
      R"({"driver":"qcow2","node-name":"t0","file":{"driver":"file","filename":"/i/t.qcow2"}})");
  EXPECT_EQ(image_node({.node_name = "r0",
                        .filename = "/i/r.img",
                        .format = "raw",
                        .read_only = true,
                        .discard = "unmap",
                        .cache_direct = true})
                .dump(),
            R"({"driver":"raw","node-name":"r0","file":{"driver":"file","filename":"/i/r.img"},)"
            R"("read-only":true,"discard":"unmap","cache":{"direct":true}})");
  EXPECT_EQ(
      image_node({.node_name = "o", .filename = "/o", .backing = Json::null()}).dump(),
      R"({"driver":"qcow2","node-name":"o","file":{"driver":"file","filename":"/o"},"backing":null})");
  EXPECT_THROW(image_node({.node_name = "v", .filename = "/v", .format = "vmdk"}), Error);
  EXPECT_THROW(
      image_node(
          {.node_name = "v", .filename = "/v", .format = "raw", .backing = Json::string("b")}),
      Error);
}

// Test that every builder, with every member set, makes arguments QEMU 7.2's
// recorded schema accepts (the integration suite checks the same against
// the installed QEMU; this runs everywhere).
TEST(Commands, BuildersFitRecordedSchema) {
  const vmshift::testing::QapiSchema& schema = vmshift::testing::QapiSchema::recorded();
  for (const auto& [command, args] : vmshift::testing::every_typed_command()) {
    SCOPED_TRACE(command + " " + args.dump());
    EXPECT_THAT(schema.check_arguments(command, args), ::testing::IsEmpty());
  }
}

// Test that migrate-set-capabilities sends a list of {capability, state}.
TEST(Commands, MigrateSetCapabilities) {
  FakeQmpPeer peer;
  peer.expect("qmp_capabilities").reply("{}");
  peer.expect("migrate-set-capabilities")
      .with_args(R"({"capabilities":[{"capability":"auto-converge","state":true},)"
                 R"({"capability":"postcopy-ram","state":false}]})")
      .reply("{}");
  peer.expect("migrate").with_args(R"({"uri":"tcp:10.0.0.2:49152"})").reply("{}");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  migrate_set_capabilities(
      client,
      {{MigrationCapability::kAutoConverge, true}, {MigrationCapability::kPostcopyRam, false}},
      soon());
  migrate(client, "tcp:10.0.0.2:49152", soon());
}

// Test that query-migrate's reply during a migration is parsed.
TEST(Commands, ParsesActiveMigration) {
  Json reply = Json::parse(
      R"({"expected-downtime":300,"status":"active","setup-time":12,"total-time":1503,)"
      R"("ram":{"total":68747264,"postcopy-requests":0,"dirty-sync-count":2,)"
      R"("multifd-bytes":0,"pages-per-second":3000,"downtime-bytes":0,"page-size":4096,)"
      R"("remaining":1048576,"postcopy-bytes":0,"mbps":268.4,"transferred":50331648,)"
      R"("dirty-pages-rate":120,"skipped":0,"normal-bytes":50000000,"normal":12207,)"
      R"("precopy-bytes":50331648,"duplicate":4000}})");
  MigrationInfo info = parse_migration_info(reply);
  EXPECT_EQ(info.status, "active");
  ASSERT_TRUE(info.ram);
  EXPECT_EQ(info.ram->remaining, 1048576);
  EXPECT_EQ(info.ram->dirty_pages_rate, 120);
  EXPECT_DOUBLE_EQ(info.ram->mbps, 268.4);
  EXPECT_EQ(info.total_time, 1503);
  EXPECT_EQ(info.downtime, std::nullopt);
  EXPECT_EQ(parse_migration_info(Json::object()).status, "none");
}

// Test that the typed helpers drive a session recorded from a real QEMU 7.2
// (a blockdev-mirror with its events) and parse every reply of it.
TEST(Commands, ReplaysRecordedQemuMirrorSession) {
  FakeQmpPeer peer(/*greeting=*/false);
  peer.load_transcript(VMSHIFT_TEST_DATA "/qmp/qemu-7.2-mirror.transcript");
  peer.start();
  Client client;
  client.connect(peer.socket_path(), soon());
  EXPECT_EQ(client.greeting().version.to_string(), "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)");
  EXPECT_EQ(query_status(client, soon()).status, "prelaunch");
  cont(client, soon());
  EXPECT_TRUE(query_status(client, soon()).running);
  blockdev_add(client, image_node({.node_name = "dst0", .filename = "/images/dst.qcow2"}), soon());
  try {
    blockdev_add(client, image_node({.node_name = "bad0", .filename = "/images/missing.qcow2"}),
                 soon());
    FAIL() << "no error";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.desc(), "Could not open '/images/missing.qcow2': No such file or directory");
  }
  blockdev_mirror(client, {.job_id = "mirror0", .device = "src0", .target = "dst0"}, soon());
  auto is_mine = [](const Event& e) { return e.data.get_string("device") == "mirror0"; };
  Event ready = client.wait_for_event("BLOCK_JOB_READY", is_mine, soon());
  EXPECT_EQ(ready.data.get_int("len"), 8388608);

  std::vector<BlockJob> jobs = query_block_jobs(client, soon());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].device, "mirror0");
  EXPECT_EQ(jobs[0].type, "mirror");
  EXPECT_EQ(jobs[0].status, "ready");
  EXPECT_TRUE(jobs[0].ready);
  EXPECT_EQ(jobs[0].offset, jobs[0].len);

  std::vector<JobInfo> generic = query_jobs(client, soon());
  ASSERT_EQ(generic.size(), 1u);
  EXPECT_EQ(generic[0].id, "mirror0");
  EXPECT_EQ(generic[0].current_progress, 8388608);

  block_job_complete(client, "mirror0", soon());
  Event completed = client.wait_for_event("BLOCK_JOB_COMPLETED", is_mine, soon());
  EXPECT_FALSE(completed.data.has("error"));

  std::vector<BlockDevice> devices = query_block(client, soon());
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].device, "");
  EXPECT_EQ(devices[0].qdev, "/machine/peripheral/vd0/virtio-backend");
  ASSERT_TRUE(devices[0].inserted);
  EXPECT_EQ(devices[0].inserted->node_name, "dst0");
  EXPECT_EQ(devices[0].inserted->file, "/images/dst.qcow2");
  EXPECT_EQ(devices[0].inserted->driver, "qcow2");
  EXPECT_EQ(devices[0].inserted->virtual_size, 8388608);

  std::vector<BlockNode> nodes = query_named_block_nodes(client, soon());
  std::vector<std::string> names;
  for (const auto& n : nodes) names.push_back(n.node_name);
  EXPECT_THAT(names, ::testing::IsSupersetOf({"dst0", "src0"}));

  EXPECT_EQ(query_migrate(client, soon()).status, "none");
  quit(client, soon());
  EXPECT_EQ(client.wait_for_event("SHUTDOWN", soon()).data.get_string("reason"), "host-qmp-quit");
  // Every event the session saw but nobody waited for is still there, in order.
  std::vector<Event> rest = client.take_events();
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.front().name, "RESUME");
}

}  // namespace
}  // namespace vmshift::qmp
