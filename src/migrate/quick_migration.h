// The transfer types built on saving a VM's state and on the copy engine:
//
// quick storage migration (qsm.cc, SCVMM's QSM) - a running VM's disks (and
// the VM, when the destination is another host) move while it runs; it
// pauses only to save its state and move what changed since the copy began:
//
//   snapshot   each disk gets a qcow2 overlay; the old file (the base) turns read-only
//   copy       the bases to the destination, while the VM runs (copy engine)
//   save       the VM's state to a file                       <- the pause begins
//   transfer   the overlays and the state file to the destination (another host only)
//   restore    on the destination: each overlay on its copied base  <- the pause ends
//   merge      each overlay into its base while the VM runs (active commit), overlays deleted
//   verify     the VM runs on the new files; defined there
//   cleanup    source files and (another host) the source definition removed
//
// quick migration (quick.cc) - shared storage: save the state to the shared
// storage, restore it on the destination host.
//
// network migration (network.cc) - a shut-off (or saved) VM: copy its disks
// (and saved state), define it on the destination, verify the copies,
// remove it from the source; resumable.
//
// A failure before the save leaves the VM running on the source with its
// overlays merged back; a failure between the save and the restore restores
// it on the source; each says so.
#pragma once

#include <string>
#include <vector>

#include "migrate/copy_files.h"
#include "migrate/live_migration.h"

namespace vmshift::migrate {

// What a quick migration job saves for its recovery.
struct QuickState {
  std::string phase = "saving";  // saving, saved, restored, done, undone
  std::string vm;
  std::string state;  // on the shared storage
  // Read with its secrets (graphics passwords): in memory only, never in
  // the recovery data (a recovery restores from the state file's own).
  std::string saved_xml;
  std::string dump() const {
    return Json::object()
        .set("phase", Json::string(phase))
        .set("vm", Json::string(vm))
        .set("state", Json::string(state))
        .dump();
  }
  static QuickState parse(const std::string& text) {
    Json j = Json::parse(text);
    return {j.get_string("phase"), j.get_string("vm"), j.get_string("state"), ""};
  }
};

// What a network migration job saves; a resumed job continues from it.
struct NetworkState {
  std::string phase = "copy";  // copy, defined, done
  std::string vm;
  std::vector<FileCopy> files;
  std::string saved_src, saved_dst;  // managed-save state, if the VM was saved
  std::string dump() const {
    Json f = Json::array();
    for (const auto& x : files) f.push(to_json(x));
    return Json::object()
        .set("phase", Json::string(phase))
        .set("vm", Json::string(vm))
        .set("files", f)
        .set("saved_src", Json::string(saved_src))
        .set("saved_dst", Json::string(saved_dst))
        .dump();
  }
  static NetworkState parse(const std::string& text) {
    Json j = Json::parse(text);
    NetworkState s;
    s.phase = j.get_string("phase");
    s.vm = j.get_string("vm");
    for (const Json& f : j.get("files").items()) s.files.push_back(file_copy_from_json(f));
    s.saved_src = j.get_string("saved_src");
    s.saved_dst = j.get_string("saved_dst");
    return s;
  }
};

// A disk of a quick storage migration.
struct QsmDisk {
  std::string target;
  std::string base;         // the disk's file on the source, the base after the snapshot
  std::string dest;         // the base's copy on the destination
  std::string format;       // of the base
  std::string overlay_src;  // the overlay on the source
  std::string overlay_dst;  // where the VM finds it on the destination
};

// What a quick storage migration job saves before each change, for its recovery.
struct QsmState {
  // snapshot, copy, saving, saved, restored, merged, done, undone
  std::string phase = "snapshot";
  std::string vm;
  bool other_host = true;
  bool keep_source = false;
  std::vector<QsmDisk> disks;
  std::string state_src, state_dst;
  // The definition in the saved state, read with its secrets (graphics
  // passwords): kept in memory only, never in the recovery data (a
  // recovery restores on the source from the state file's own).
  std::string saved_xml;
  std::vector<FileCopy> bases, rest;
  std::int64_t pause_start_ms = 0;
  std::int64_t predicted_pause_ms = 0;
  // Files this job made (overlays, copies, saved states): the only ones it
  // deletes, and only while they are still those files.
  std::vector<Created> created;

  std::string dump() const {
    Json d = Json::array();
    for (const auto& x : disks)
      d.push(Json::object()
                 .set("target", Json::string(x.target))
                 .set("base", Json::string(x.base))
                 .set("dest", Json::string(x.dest))
                 .set("format", Json::string(x.format))
                 .set("overlay_src", Json::string(x.overlay_src))
                 .set("overlay_dst", Json::string(x.overlay_dst)));
    auto copies = [](const std::vector<FileCopy>& v) {
      Json a = Json::array();
      for (const auto& f : v) a.push(to_json(f));
      return a;
    };
    return Json::object()
        .set("phase", Json::string(phase))
        .set("vm", Json::string(vm))
        .set("other_host", Json::boolean(other_host))
        .set("keep_source", Json::boolean(keep_source))
        .set("disks", d)
        .set("state_src", Json::string(state_src))
        .set("state_dst", Json::string(state_dst))
        .set("bases", copies(bases))
        .set("rest", copies(rest))
        .set("pause_start_ms", Json::integer(pause_start_ms))
        .set("predicted_pause_ms", Json::integer(predicted_pause_ms))
        .set("created", to_json(created))
        .dump();
  }
  static QsmState parse(const std::string& text) {
    Json j = Json::parse(text);
    QsmState s;
    s.phase = j.get_string("phase");
    s.vm = j.get_string("vm");
    s.other_host = j.get_bool("other_host");
    s.keep_source = j.get_bool("keep_source");
    for (const Json& x : j.get("disks").items())
      s.disks.push_back({x.get_string("target"), x.get_string("base"), x.get_string("dest"),
                         x.get_string("format"), x.get_string("overlay_src"),
                         x.get_string("overlay_dst")});
    s.state_src = j.get_string("state_src");
    s.state_dst = j.get_string("state_dst");
    for (const Json& f : j.get("bases").items()) s.bases.push_back(file_copy_from_json(f));
    for (const Json& f : j.get("rest").items()) s.rest.push_back(file_copy_from_json(f));
    s.pause_start_ms = j.get_int("pause_start_ms");
    s.predicted_pause_ms = j.get_int("predicted_pause_ms");
    s.created = created_list_from_json(j.find("created"));
    return s;
  }
};

std::vector<std::string> qsm_steps();
Result run_qsm(Site& source, Site& dest, const LiveMigrationPlan& plan,
               const LiveMigrationOptions& options, JobContext& job);
Result recover_qsm(Site& source, Site& dest, const std::string& saved_state, JobContext& job);

std::vector<std::string> quick_steps();
Result run_quick(Site& source, Site& dest, const LiveMigrationPlan& plan,
                 const LiveMigrationOptions& options, JobContext& job);
Result recover_quick(Site& source, Site& dest, const std::string& saved_state, JobContext& job);

std::vector<std::string> network_steps();
// Runs, or with saved_state from an earlier run resumes, a network migration.
Result run_network(Site& source, Site& dest, const LiveMigrationPlan& plan,
                   const LiveMigrationOptions& options, const std::string& saved_state,
                   JobContext& job);

// Where QSM keeps a disk's overlay: next to the file it sits on.
std::string overlay_path(const std::string& disk);
// Where a saved state goes: in the directory of a disk of the VM.
std::string state_path(const std::string& dir, const std::string& vm);

}  // namespace vmshift::migrate
