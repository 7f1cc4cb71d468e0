// The JSON documents vmshift saves (job params, saved state in the job
// store), pinned as golden documents: each struct's encoder writes exactly
// these keys and value types, its decoder reads them back, and the documents
// older versions wrote (lacking keys added later) still read.
#include "base/codec.h"

#include <gtest/gtest.h>

#include <functional>

#include "base/error.h"
#include "base/json.h"
#include "core/job_store.h"
#include "core/runner.h"
#include "migrate/copy_files.h"
#include "migrate/created.h"
#include "migrate/live_migration.h"
#include "migrate/live_storage.h"
#include "migrate/quick_migration.h"
#include "support/temp_dir.h"
#include "transfer/copy_engine.h"

namespace vmshift {
namespace {

using namespace std::chrono_literals;

// ---- the codecs under test: each struct's field list

template <typename T>
Json encode(const T& v) {
  return codec::encode(v);
}
template <typename T>
T decode(const Json& j) {
  return codec::decode<T>(j, "doc");
}
// A job's created files, as every saved state lists them.
template <>
std::vector<migrate::Created> decode(const Json& j) {
  std::vector<migrate::Created> all;
  migrate::created_list.decode(j, all, "created");
  return all;
}

#define EXPECT_JSON_EQ(got, want)                                                      \
  do {                                                                                 \
    Json got_ = (got), want_ = (want);                                                 \
    EXPECT_TRUE(got_ == want_) << "got  " << got_.dump() << "\nwant " << want_.dump(); \
  } while (0)

// Decoding the golden document and encoding it again gives it back.
template <typename T>
void expect_round_trip(const char* golden) {
  Json g = Json::parse(golden);
  EXPECT_JSON_EQ(encode(decode<T>(g)), g);
}

// ---- filled-in structs and what today's encoders write for them

hosts::FileIdentity identity() {
  return {.basis = "inode",
          .device = 18446744073709551615ull,
          .inode = 1234567,
          .birth_ns = 1700000000123456789,
          .key = ""};
}
constexpr const char* kIdentity =
    R"({"basis":"inode","device":"18446744073709551615","inode":"1234567",)"
    R"("birth_ns":1700000000123456789,"key":""})";

migrate::Created created() { return {"h2", "/p/a.qcow2", identity()}; }
const std::string kCreated =
    std::string(R"({"host":"h2","path":"/p/a.qcow2","identity":)") + kIdentity + "}";

transfer::Journal journal() {
  transfer::Journal j;
  j.chunk_size = 65536;
  j.length = 200000;
  j.done = {{0, 0xff}, {3, 0xffffffffffffffffull}};
  j.created = true;
  return j;
}
constexpr const char* kJournal = R"({"chunk_size":65536,"length":200000,"created":true,)"
                                 R"("done":{"0":"00000000000000ff","3":"ffffffffffffffff"}})";

migrate::FileCopy file_copy() { return {"/a/x.qcow2", "/b/x.qcow2", journal(), true}; }
const std::string kFileCopy = std::string(R"({"from":"/a/x.qcow2","to":"/b/x.qcow2","journal":)") +
                              kJournal + R"(,"done":true})";

migrate::DiskMove disk_move(bool replaces, const std::string& target = "vda") {
  migrate::DiskMove m;
  m.target = target;
  m.source = "/a/vda.qcow2";
  m.dest = "/b/vda.qcow2";
  m.format = "qcow2";
  m.capacity = 10737418240;
  m.need = 1048576;
  m.backing = {"/a/base.qcow2", "/a/base0.raw"};
  m.backing_format = "qcow2";
  m.replace_existing = replaces;
  if (replaces) m.replaces = identity();
  return m;
}
// Without the closing brace, for a caller to add keys.
std::string disk_move_keys(bool replaces, const std::string& target = "vda") {
  return R"({"target":")" + target + R"(","source":"/a/vda.qcow2","dest":"/b/vda.qcow2",)" +
         R"("format":"qcow2","capacity":10737418240,"need":1048576,)" +
         R"("backing":["/a/base.qcow2","/a/base0.raw"],"backing_format":"qcow2",)" +
         (replaces ? std::string(R"("replace_existing":true,"replaces":)") + kIdentity
                   : std::string(R"("replace_existing":false,"replaces":null)"));
}
std::string disk_move_json(bool replaces) { return disk_move_keys(replaces) + "}"; }

// ---- FileIdentity, Created

// Test that a file identity keeps 64-bit device and inode numbers as decimal strings.
TEST(CodecTest, FileIdentity) {
  EXPECT_JSON_EQ(encode(identity()), Json::parse(kIdentity));
  EXPECT_EQ(decode<hosts::FileIdentity>(Json::parse(kIdentity)), identity());
  expect_round_trip<hosts::FileIdentity>(kIdentity);
}

// Test that a created file's record nests its identity.
TEST(CodecTest, Created) {
  EXPECT_JSON_EQ(encode(created()), Json::parse(kCreated));
  migrate::Created c = decode<migrate::Created>(Json::parse(kCreated));
  EXPECT_EQ(c.host, "h2");
  EXPECT_EQ(c.path, "/p/a.qcow2");
  EXPECT_EQ(c.identity, identity());
  expect_round_trip<migrate::Created>(kCreated.c_str());
}

// Test that the list of created files is an array of records, and that the
// bare paths an older version listed (no identity) are skipped.
TEST(CodecTest, CreatedList) {
  std::string golden = "[" + kCreated + "," + kCreated + "]";
  EXPECT_JSON_EQ(encode(std::vector<migrate::Created>{created(), created()}), Json::parse(golden));
  expect_round_trip<std::vector<migrate::Created>>(golden.c_str());
  EXPECT_JSON_EQ(encode(std::vector<migrate::Created>{}), Json::parse("[]"));
  std::vector<migrate::Created> old =
      decode<std::vector<migrate::Created>>(Json::parse("[\"/p/old.qcow2\"," + kCreated + "]"));
  ASSERT_EQ(old.size(), 1u);
  EXPECT_EQ(old[0].path, "/p/a.qcow2");
}

// ---- the copy engine's journal, FileCopy, CopyJobOptions

// Test that a journal keeps its chunk hashes as 16 hex digits under the chunk's index.
TEST(CodecTest, Journal) {
  EXPECT_JSON_EQ(encode(journal()), Json::parse(kJournal));
  transfer::Journal j = decode<transfer::Journal>(Json::parse(kJournal));
  EXPECT_EQ(j.chunk_size, 65536u);
  EXPECT_EQ(j.length, 200000u);
  EXPECT_EQ(j.done, journal().done);
  EXPECT_TRUE(j.created);
  expect_round_trip<transfer::Journal>(kJournal);
}

// Test that a file copy nests its journal.
TEST(CodecTest, FileCopy) {
  EXPECT_JSON_EQ(encode(file_copy()), Json::parse(kFileCopy));
  migrate::FileCopy f = decode<migrate::FileCopy>(Json::parse(kFileCopy));
  EXPECT_EQ(f.from, "/a/x.qcow2");
  EXPECT_EQ(f.to, "/b/x.qcow2");
  EXPECT_TRUE(f.done);
  EXPECT_EQ(f.journal.done, journal().done);
  expect_round_trip<migrate::FileCopy>(kFileCopy.c_str());
}

constexpr const char* kCopyOptions =
    R"({"from_host":"h1","from_path":"/a/x.raw","to_host":"h2","to_path":"/b/x.raw",)"
    R"("bandwidth":1048576,"chunk_size":4194304,"verify":true,"force":false})";

// Test that a copy job's options keep every field.
TEST(CodecTest, CopyJobOptions) {
  migrate::CopyJobOptions o{.from_host = "h1",
                            .from_path = "/a/x.raw",
                            .to_host = "h2",
                            .to_path = "/b/x.raw",
                            .bandwidth = 1048576,
                            .chunk_size = 4194304,
                            .verify = true,
                            .force = false};
  EXPECT_JSON_EQ(encode(o), Json::parse(kCopyOptions));
  migrate::CopyJobOptions d = decode<migrate::CopyJobOptions>(Json::parse(kCopyOptions));
  EXPECT_EQ(d.to_path, "/b/x.raw");
  EXPECT_EQ(d.chunk_size, 4194304u);
  EXPECT_TRUE(d.verify);
  expect_round_trip<migrate::CopyJobOptions>(kCopyOptions);
}

// ---- DiskMove, LiveStorageOptions

// Test that a disk move writes every field, a missing replacement as null.
TEST(CodecTest, DiskMove) {
  for (bool replaces : {true, false}) {
    std::string golden = disk_move_json(replaces);
    EXPECT_JSON_EQ(encode(disk_move(replaces)), Json::parse(golden));
    migrate::DiskMove m = decode<migrate::DiskMove>(Json::parse(golden));
    EXPECT_EQ(m.backing, disk_move(replaces).backing);
    EXPECT_EQ(m.capacity, 10737418240u);
    EXPECT_EQ(m.replaces, disk_move(replaces).replaces);
    expect_round_trip<migrate::DiskMove>(golden.c_str());
  }
}

// Test that a disk move an older version wrote, with only target, source
// and dest, reads with the defaults.
TEST(CodecTest, DiskMoveOld) {
  migrate::DiskMove m = decode<migrate::DiskMove>(
      Json::parse(R"({"target":"vdb","source":"/a/vdb.raw","dest":"/b/vdb.raw"})"));
  EXPECT_EQ(m.target, "vdb");
  EXPECT_EQ(m.dest, "/b/vdb.raw");
  EXPECT_EQ(m.format, "");
  EXPECT_EQ(m.capacity, 0u);
  EXPECT_EQ(m.need, 0u);
  EXPECT_TRUE(m.backing.empty());
  EXPECT_EQ(m.backing_format, "");
  EXPECT_FALSE(m.replace_existing);
  EXPECT_FALSE(m.replaces);
}

constexpr const char* kLiveStorageOptions =
    R"({"to":"/b","disks":[{"target":"vda","path":""},{"target":"vdb","path":"/c/vdb.qcow2"}],)"
    R"("bandwidth":524288,"sync_writes":true,"keep_source":false,"force":true,"shallow":false,)"
    R"("progress_timeout":90})";
constexpr const char* kLiveStorageOptionsNoDir =
    R"({"disks":[{"target":"vdb","path":"/c/vdb.qcow2"}],)"
    R"("bandwidth":0,"sync_writes":false,"keep_source":true,"force":false,"shallow":true,)"
    R"("progress_timeout":150})";

// Test that live storage options write the destination directory only when
// there is one, and the disks as target/path pairs.
TEST(CodecTest, LiveStorageOptions) {
  migrate::LiveStorageOptions o;
  o.to_dir = "/b";
  o.disks = {{"vda", ""}, {"vdb", "/c/vdb.qcow2"}};
  o.bandwidth = 524288;
  o.sync_writes = true;
  o.force = true;
  o.progress_timeout = 90s;
  EXPECT_JSON_EQ(encode(o), Json::parse(kLiveStorageOptions));
  migrate::LiveStorageOptions d =
      decode<migrate::LiveStorageOptions>(Json::parse(kLiveStorageOptions));
  EXPECT_EQ(d.to_dir, "/b");
  EXPECT_EQ(d.disks, o.disks);
  EXPECT_EQ(d.progress_timeout, 90s);
  expect_round_trip<migrate::LiveStorageOptions>(kLiveStorageOptions);

  migrate::LiveStorageOptions n;
  n.disks = {{"vdb", "/c/vdb.qcow2"}};
  n.keep_source = true;
  n.shallow = true;
  EXPECT_JSON_EQ(encode(n), Json::parse(kLiveStorageOptionsNoDir));
  EXPECT_FALSE(decode<migrate::LiveStorageOptions>(Json::parse(kLiveStorageOptionsNoDir)).to_dir);
  expect_round_trip<migrate::LiveStorageOptions>(kLiveStorageOptionsNoDir);
}

// ---- LiveMigrationOptions, LiveMigrationPlan

constexpr const char* kLiveOptions =
    R"({"dest_host":"h2","type":"live-vsm","storage":"/b",)"
    R"("disks":[{"target":"vda","path":"/b/vda.qcow2"}],"bandwidth":2097152,"compress":"zstd",)"
    R"("parallel":4,"auto_converge":true,"postcopy":false,"max_downtime_ms":250,)"
    R"("timeout_per_gib":30,"progress_timeout":60,"timeout_action":"postcopy","tls":true,)"
    R"("keep_source":false,"force":true,"shallow":false,"verify":true,"start":false})";
constexpr const char* kLiveOptionsPlain =
    R"({"dest_host":"h3","disks":[],"bandwidth":0,"compress":"","parallel":0,)"
    R"("auto_converge":false,"postcopy":true,"max_downtime_ms":0,"timeout_per_gib":0,)"
    R"("progress_timeout":120,"timeout_action":"abort","tls":false,"keep_source":true,)"
    R"("force":false,"shallow":true,"verify":false,"start":true})";
// As a version before --shallow, --verify and --start wrote it.
constexpr const char* kLiveOptionsOld =
    R"({"dest_host":"h3","disks":[],"bandwidth":0,"compress":"","parallel":0,)"
    R"("auto_converge":false,"postcopy":false,"max_downtime_ms":0,"timeout_per_gib":0,)"
    R"("progress_timeout":120,"timeout_action":"abort","tls":false,"keep_source":false,)"
    R"("force":false})";

// Test that live migration options write the forced type and storage only
// when set, and durations as counts under their unit's name.
TEST(CodecTest, LiveMigrationOptions) {
  migrate::LiveMigrationOptions o;
  o.dest_host = "h2";
  o.type = migrate::Kind::kLiveVsm;
  o.storage = "/b";
  o.disks = {{"vda", "/b/vda.qcow2"}};
  o.bandwidth = 2097152;
  o.compress = "zstd";
  o.parallel = 4;
  o.auto_converge = true;
  o.max_downtime = 250ms;
  o.timeout_per_gib = 30s;
  o.progress_timeout = 60s;
  o.timeout_action = "postcopy";
  o.tls = true;
  o.force = true;
  o.verify = true;
  EXPECT_JSON_EQ(encode(o), Json::parse(kLiveOptions));
  migrate::LiveMigrationOptions d =
      decode<migrate::LiveMigrationOptions>(Json::parse(kLiveOptions));
  EXPECT_EQ(d.type, migrate::Kind::kLiveVsm);
  EXPECT_EQ(d.storage, "/b");
  EXPECT_EQ(d.max_downtime, 250ms);
  EXPECT_EQ(d.timeout_per_gib, 30s);
  EXPECT_EQ(d.parallel, 4);
  expect_round_trip<migrate::LiveMigrationOptions>(kLiveOptions);

  migrate::LiveMigrationOptions p;
  p.dest_host = "h3";
  p.postcopy = true;
  p.keep_source = true;
  p.shallow = true;
  p.start = true;
  EXPECT_JSON_EQ(encode(p), Json::parse(kLiveOptionsPlain));
  EXPECT_FALSE(decode<migrate::LiveMigrationOptions>(Json::parse(kLiveOptionsPlain)).type);
  expect_round_trip<migrate::LiveMigrationOptions>(kLiveOptionsPlain);
}

// Test that live migration options an older version wrote, without
// shallow, verify and start, read with those off.
TEST(CodecTest, LiveMigrationOptionsOld) {
  migrate::LiveMigrationOptions d =
      decode<migrate::LiveMigrationOptions>(Json::parse(kLiveOptionsOld));
  EXPECT_EQ(d.dest_host, "h3");
  EXPECT_FALSE(d.shallow);
  EXPECT_FALSE(d.verify);
  EXPECT_FALSE(d.start);
}

std::string live_plan_json() {
  return std::string(
             R"({"vm":"g1","source_host":"h1","dest_host":"h2","dest_peer_uri":"qemu+tcp://h2/system",)") +
         R"("migrate_uri":"tcp://10.0.0.2","copies":[)" + disk_move_json(false) +
         R"(],"shared":{"vdb":"/s/vdb.qcow2"},"memory_bytes":1073741824,)" +
         R"("predicted_total_ms":12345,"predicted_pause_ms":210})";
}

// Test that a plan writes its prediction as two counts of milliseconds.
TEST(CodecTest, LiveMigrationPlan) {
  migrate::LiveMigrationPlan p;
  p.vm = "g1";
  p.source_host = "h1";
  p.dest_host = "h2";
  p.dest_peer_uri = "qemu+tcp://h2/system";
  p.migrate_uri = "tcp://10.0.0.2";
  p.copies = {disk_move(false)};
  p.shared = {{"vdb", "/s/vdb.qcow2"}};
  p.memory_bytes = 1073741824;
  p.prediction.total = 12345ms;
  p.prediction.pause = 210ms;
  EXPECT_JSON_EQ(encode(p), Json::parse(live_plan_json()));
  migrate::LiveMigrationPlan d = decode<migrate::LiveMigrationPlan>(Json::parse(live_plan_json()));
  EXPECT_EQ(d.prediction.total, 12345ms);
  EXPECT_EQ(d.prediction.pause, 210ms);
  EXPECT_EQ(d.shared, p.shared);
  ASSERT_EQ(d.copies.size(), 1u);
  EXPECT_EQ(d.copies[0].dest, "/b/vda.qcow2");
  expect_round_trip<migrate::LiveMigrationPlan>(live_plan_json().c_str());
}

// ---- job params

class JobParamsTest : public ::testing::Test {
 protected:
  vmshift::testing::TempDir dir_;
  core::JobStore store_ = core::JobStore::open(dir_.file("jobs.db"));
};

// Test that a live storage job's params hold the guest and the options.
TEST_F(JobParamsTest, LiveStorage) {
  core::GuestSpec spec{"libvirt", "h1", "g1", ""};
  migrate::LiveStorageOptions o;
  o.disks = {{"vdb", "/c/vdb.qcow2"}};
  o.keep_source = true;
  o.shallow = true;
  std::int64_t id = core::create_live_storage_job(store_, spec, "uuid", o);
  EXPECT_JSON_EQ(Json::parse(store_.get(id).params),
                 Json::parse(std::string(R"({"guest":{"kind":"libvirt","host":"h1","vm":"g1",)") +
                             R"("socket":""},"options":)" + kLiveStorageOptionsNoDir + "}"));
}

// Test that a copy job's params hold its options.
TEST_F(JobParamsTest, Copy) {
  migrate::CopyJobOptions o = decode<migrate::CopyJobOptions>(Json::parse(kCopyOptions));
  std::int64_t id = core::create_copy_job(store_, o);
  EXPECT_JSON_EQ(Json::parse(store_.get(id).params),
                 Json::parse(std::string(R"({"options":)") + kCopyOptions + "}"));
}

// Test that a live migration job's params hold the plan and the options,
// with the type the job runs as.
TEST_F(JobParamsTest, LiveMigration) {
  migrate::LiveMigrationPlan p = decode<migrate::LiveMigrationPlan>(Json::parse(live_plan_json()));
  migrate::LiveMigrationOptions o =
      decode<migrate::LiveMigrationOptions>(Json::parse(kLiveOptions));
  o.type = std::nullopt;
  std::int64_t id = core::create_live_migration_job(store_, "live-vsm", p, "uuid", o);
  EXPECT_JSON_EQ(
      Json::parse(store_.get(id).params),
      Json::parse("{\"plan\":" + live_plan_json() + ",\"options\":" + kLiveOptions + "}"));
}

// ---- saved state

std::string live_storage_state_json() {
  return std::string(R"({"phase":"pivot","keep_source":true,"disks":[)") + disk_move_keys(true) +
         R"(,"pivoted":true},)" + disk_move_keys(false, "vdb") +
         R"(,"pivoted":false}],"created":[)" + kCreated + "]}";
}

// Test that a live storage job's state writes each disk's move with whether it was switched.
TEST(CodecStateTest, LiveStorage) {
  migrate::LiveStorageState s;
  s.phase = "pivot";
  s.keep_source = true;
  s.moves = {disk_move(true), disk_move(false, "vdb")};
  s.pivoted = {"vda"};
  s.created = {created()};
  std::string golden = live_storage_state_json();
  EXPECT_JSON_EQ(encode(s), Json::parse(golden));
  migrate::LiveStorageState d = decode<migrate::LiveStorageState>(Json::parse(golden));
  EXPECT_EQ(d.pivoted, s.pivoted);
  ASSERT_EQ(d.moves.size(), 2u);
  EXPECT_EQ(d.moves[1].target, "vdb");
  EXPECT_EQ(d.created.size(), 1u);
  expect_round_trip<migrate::LiveStorageState>(golden.c_str());
}

// Test that a live storage job's state an older version wrote, without the
// list of created files, reads with an empty one.
TEST(CodecStateTest, LiveStorageOld) {
  migrate::LiveStorageState d = decode<migrate::LiveStorageState>(Json::parse(
      R"({"phase":"copy","keep_source":false,"disks":[{"target":"vda","source":"/a/vda.qcow2",)"
      R"("dest":"/b/vda.qcow2","pivoted":false}]})"));
  EXPECT_EQ(d.phase, "copy");
  ASSERT_EQ(d.moves.size(), 1u);
  EXPECT_TRUE(d.pivoted.empty());
  EXPECT_TRUE(d.created.empty());
}

std::string live_migration_state_json() {
  return std::string(R"({"phase":"switched","vm":"g1","keep_source":false,"copies":[)") +
         disk_move_json(false) + R"(],"created":[)" + kCreated + R"(],"memory_bps":52428800})";
}

// Test that a live migration job's state keeps its copies, created files and memory rate.
TEST(CodecStateTest, LiveMigration) {
  migrate::LiveMigrationState s;
  s.phase = "switched";
  s.vm = "g1";
  s.copies = {disk_move(false)};
  s.created = {created()};
  s.memory_bps = 52428800;
  EXPECT_JSON_EQ(encode(s), Json::parse(live_migration_state_json()));
  migrate::LiveMigrationState d =
      decode<migrate::LiveMigrationState>(Json::parse(live_migration_state_json()));
  EXPECT_EQ(d.phase, "switched");
  EXPECT_EQ(d.vm, "g1");
  ASSERT_EQ(d.copies.size(), 1u);
  EXPECT_EQ(d.created.size(), 1u);
}

// Test that a live migration job's state an older version wrote, without
// created files and memory rate, reads.
TEST(CodecStateTest, LiveMigrationOld) {
  migrate::LiveMigrationState d = decode<migrate::LiveMigrationState>(
      Json::parse(R"({"phase":"migrate","vm":"g1","keep_source":true,"copies":[]})"));
  EXPECT_EQ(d.phase, "migrate");
  EXPECT_TRUE(d.keep_source);
  EXPECT_TRUE(d.created.empty());
  EXPECT_EQ(d.memory_bps, 0u);
}

std::string qsm_state_json() {
  return std::string(R"({"phase":"saved","vm":"g1","other_host":true,"keep_source":false,)") +
         R"("disks":[{"target":"vda","base":"/a/vda.qcow2","dest":"/b/vda.qcow2",)" +
         R"("format":"qcow2","overlay_src":"/a/vda.qcow2.qsm","overlay_dst":"/a/vda.qcow2.qsm"}],)" +
         R"("state_src":"/a/g1.state","state_dst":"/b/g1.state","bases":[)" + kFileCopy +
         R"(],"rest":[],"pause_start_ms":1700000000000,"predicted_pause_ms":800,"created":[)" +
         kCreated + "]}";
}

// Test that a quick storage migration's state keeps its disks, copies and timings.
TEST(CodecStateTest, Qsm) {
  migrate::QsmState s;
  s.phase = "saved";
  s.vm = "g1";
  s.disks = {
      {"vda", "/a/vda.qcow2", "/b/vda.qcow2", "qcow2", "/a/vda.qcow2.qsm", "/a/vda.qcow2.qsm"}};
  s.state_src = "/a/g1.state";
  s.state_dst = "/b/g1.state";
  s.saved_xml = "<domain/>";  // never saved
  s.bases = {file_copy()};
  s.pause_start_ms = 1700000000000;
  s.predicted_pause_ms = 800;
  s.created = {created()};
  EXPECT_JSON_EQ(encode(s), Json::parse(qsm_state_json()));
  migrate::QsmState d = decode<migrate::QsmState>(Json::parse(qsm_state_json()));
  ASSERT_EQ(d.disks.size(), 1u);
  EXPECT_EQ(d.disks[0].overlay_dst, "/a/vda.qcow2.qsm");
  EXPECT_EQ(d.saved_xml, "");
  EXPECT_EQ(d.pause_start_ms, 1700000000000);
  expect_round_trip<migrate::QsmState>(qsm_state_json().c_str());
}

// Test that a quick storage migration's state an older version wrote,
// without created files, reads with an empty list.
TEST(CodecStateTest, QsmOld) {
  std::string old = qsm_state_json();
  old = old.substr(0, old.rfind(R"(,"created")")) + "}";
  migrate::QsmState d = decode<migrate::QsmState>(Json::parse(old));
  EXPECT_EQ(d.phase, "saved");
  EXPECT_TRUE(d.created.empty());
}

constexpr const char* kQuickState = R"({"phase":"saved","vm":"g1","state":"/s/g1.state"})";

// Test that a quick migration's state keeps its phase, VM and state file.
TEST(CodecStateTest, Quick) {
  migrate::QuickState s{"saved", "g1", "/s/g1.state", "<domain/>"};
  EXPECT_JSON_EQ(encode(s), Json::parse(kQuickState));
  migrate::QuickState d = decode<migrate::QuickState>(Json::parse(kQuickState));
  EXPECT_EQ(d.state, "/s/g1.state");
  EXPECT_EQ(d.saved_xml, "");
  expect_round_trip<migrate::QuickState>(kQuickState);
}

std::string network_state_json() {
  return std::string(R"({"phase":"copy","vm":"g1","files":[)") + kFileCopy +
         R"(],"saved_src":"","saved_dst":"/b/g1.save"})";
}

// Test that a network migration's state keeps its copies' journals.
TEST(CodecStateTest, Network) {
  migrate::NetworkState s{"copy", "g1", {file_copy()}, "", "/b/g1.save"};
  EXPECT_JSON_EQ(encode(s), Json::parse(network_state_json()));
  migrate::NetworkState d = decode<migrate::NetworkState>(Json::parse(network_state_json()));
  ASSERT_EQ(d.files.size(), 1u);
  EXPECT_EQ(d.files[0].journal.done, journal().done);
  EXPECT_EQ(d.saved_dst, "/b/g1.save");
  expect_round_trip<migrate::NetworkState>(network_state_json().c_str());
}

std::string copy_job_state_json() {
  return std::string(R"({"files":[)") + kFileCopy + R"(],"created":[)" + kCreated + "]}";
}

// Test that a copy job's state keeps its copies and created files, and reads
// without the created files.
TEST(CodecStateTest, CopyJob) {
  migrate::CopyJobState s{{file_copy()}, {created()}};
  EXPECT_JSON_EQ(encode(s), Json::parse(copy_job_state_json()));
  expect_round_trip<migrate::CopyJobState>(copy_job_state_json().c_str());
  migrate::CopyJobState old =
      decode<migrate::CopyJobState>(Json::parse(std::string(R"({"files":[)") + kFileCopy + "]}"));
  EXPECT_EQ(old.files.size(), 1u);
  EXPECT_TRUE(old.created.empty());
}

// Test that a live migration job's state reads back its memory rate too.
TEST(CodecStateTest, LiveMigrationRoundTrip) {
  expect_round_trip<migrate::LiveMigrationState>(live_migration_state_json().c_str());
}

// ---- errors

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadData);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

// Test that a missing field is named with its path.
TEST(CodecErrorTest, Missing) {
  Json o = Json::parse(kLiveOptions);
  Json disks = Json::parse(R"([{"target":"vda","path":"/b"},{"target":"vdb"}])");
  o.set("disks", disks);
  EXPECT_EQ(error_of([&] { codec::decode<migrate::LiveMigrationOptions>(o, "options"); }),
            "options.disks[1].path: missing");
  Json p = Json::parse(live_plan_json());
  json_object_object_del(p.get(), "predicted_pause_ms");
  EXPECT_EQ(error_of([&] { codec::decode<migrate::LiveMigrationPlan>(p, "plan"); }),
            "plan.predicted_pause_ms: missing");
}

// Test that a transfer type is saved by its name and an unknown name is refused.
TEST(CodecErrorTest, UnknownKindName) {
  Json o = Json::parse(kLiveOptions);
  EXPECT_EQ(o.get_string("type"), "live-vsm");
  o.set("type", Json::string("teleport"));
  std::string why = error_of([&] { codec::decode<migrate::LiveMigrationOptions>(o, "options"); });
  EXPECT_NE(why.find("options.type"), std::string::npos) << why;
  EXPECT_NE(why.find("teleport"), std::string::npos) << why;
}

// Test that a field of the wrong type says what was expected and what came.
TEST(CodecErrorTest, WrongType) {
  Json p = Json::parse(live_plan_json());
  p.set("memory_bytes", Json::string("1G"));
  EXPECT_EQ(error_of([&] { codec::decode<migrate::LiveMigrationPlan>(p, "plan"); }),
            "plan.memory_bytes: expected integer, got string");
  EXPECT_EQ(error_of([&] { codec::decode<migrate::LiveMigrationPlan>(Json::array(), "plan"); }),
            "plan: expected object, got array");
}

// Test that an error deep in a nested struct names the whole path.
TEST(CodecErrorTest, Nested) {
  Json s = Json::parse(qsm_state_json());
  s.get("bases").at(0).get("journal").get("done").set("3", Json::integer(5));
  EXPECT_EQ(error_of([&] { codec::decode<migrate::QsmState>(s, "saved state"); }),
            "saved state.bases[0].journal.done.3: expected string, got integer");
  Json c = Json::parse(kCreated);
  c.get("identity").set("inode", Json::string("12x"));
  EXPECT_EQ(error_of([&] { codec::decode<migrate::Created>(c, "created"); }),
            "created.identity.inode: expected a decimal number, got '12x'");
}

enum class Color { kRed, kGreen };
std::string_view color_name(Color c) { return c == Color::kRed ? "red" : "green"; }
std::optional<Color> find_color(std::string_view s) {
  if (s == "red") return Color::kRed;
  if (s == "green") return Color::kGreen;
  return std::nullopt;
}
struct Paint {
  Color color = Color::kRed;
  std::optional<Color> trim;
  double gloss = 0;
};

}  // namespace
}  // namespace vmshift

template <>
struct vmshift::codec::Names<vmshift::Color> {
  static std::string_view name(Color c) { return color_name(c); }
  static std::optional<Color> find(std::string_view s) { return find_color(s); }
};
template <>
struct vmshift::codec::Fields<vmshift::Paint> {
  using T = Paint;
  static constexpr auto list =
      std::tuple{field("color", &T::color), field("trim", &T::trim), field("gloss", &T::gloss)};
};

namespace vmshift {
namespace {

// Test that an enum goes by its name, and an unknown name is an error.
TEST(CodecTest, Enum) {
  Paint p{Color::kGreen, std::nullopt, 0.5};
  EXPECT_JSON_EQ(codec::encode(p), Json::parse(R"({"color":"green","gloss":0.5})"));
  Paint d = codec::parse<Paint>(R"({"color":"red","trim":"green","gloss":1})", "paint");
  EXPECT_EQ(d.color, Color::kRed);
  EXPECT_EQ(d.trim, Color::kGreen);
  EXPECT_EQ(d.gloss, 1.0);
  EXPECT_FALSE(codec::parse<Paint>(R"({"color":"red","trim":null,"gloss":1})", "paint").trim);
  EXPECT_EQ(error_of([] { codec::parse<Paint>(R"({"color":"blue","gloss":1})", "paint"); }),
            "paint.color: unknown name 'blue'");
}

}  // namespace
}  // namespace vmshift
