// The checks of a live storage migration (move-storage), as the migrate
// planner's (core/planner.h): pure rules over facts. gather_facts asks the
// guest and its host's storage everything the checks read (the only I/O);
// plan() decides from those facts alone, so each rule is unit-tested on
// hand-written facts (tests/unit/live_storage_plan_test.cc).
//
//   plan_live_storage(guest, options, in_use)      (live_storage.h)
//     = plan(gather_facts(guest, options, in_use), options)
//
//   plan: check_state, check_where, choose_disks, then for each disk in turn
//         check_path, check_dir, check_existing, need; then check_space
//
// Each check throws vmshift::Error naming the disk and the problem, as
// plan_live_storage does; a probe that failed keeps its error in the facts,
// and the check that reads it throws it (the same code and message as when
// the probe was made there).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "guest/guest.h"
#include "migrate/live_storage.h"

namespace vmshift::migrate::live_storage {

// What the storage answered, or the error it threw.
template <typename T>
struct Probed {
  T value{};
  std::optional<Error> error;
};

struct Facts {
  std::string vm;     // the guest's description, for messages: "VM 'web'"
  std::string state;  // "running", "paused", "shut off", ...
  // The VM's disks; asked only of a running or paused VM.
  std::vector<guest::DiskInfo> disks;
  // Files defined VMs use on the hosts that see the destinations: path -> who.
  std::map<std::string, std::string> in_use;
  // Probes of the VM's host's storage (a lookup of one not made throws).
  std::map<std::string, Probed<std::optional<std::uint64_t>>> free;        // dir -> free_bytes
  std::map<std::string, Probed<bool>> exists;                              // destination
  std::map<std::pair<std::string, std::string>, Probed<bool>> same;        // (dest, file)
  std::map<std::string, Probed<std::optional<hosts::FileIdentity>>> ids;   // destination
  std::map<std::string, Probed<std::optional<std::uint64_t>>> allocation;  // backing file

  // The answers; each throws the probe's error (or that it was not made).
  std::optional<std::uint64_t> free_bytes(const std::string& dir) const;
  bool exists_at(const std::string& path) const;
  bool same_file(const std::string& dest, const std::string& file) const;
  std::optional<hosts::FileIdentity> identity(const std::string& path) const;
  std::optional<std::uint64_t> allocation_of(const std::string& path) const;
};

// A disk chosen to move, and where to.
struct Choice {
  guest::DiskInfo disk;
  std::string dest;
};

// The facts plan() needs: the guest's state and disks, and the probes of
// the destinations the options choose (none when a check before them
// already fails).
Facts gather_facts(guest::Guest& guest, const LiveStorageOptions& options,
                   const std::map<std::string, std::string>& in_use);

// The plan, from the facts alone; throws at the first check that fails.
LiveStoragePlan plan(const Facts& facts, const LiveStorageOptions& options);

// The checks, in plan()'s order.
// The VM runs or is paused (kFailedPrecondition).
void check_state(const Facts& facts);
// The options say where the disks go: --to or --disk (kInvalidArgument).
void check_where(const LiveStorageOptions& options);
// Which disks move where: every disk with a file into --to, or those named
// with --disk (each once, known, with a file and a destination).
std::vector<Choice> choose_disks(const Facts& facts, const LiveStorageOptions& options);
// Every file the VM uses (each disk's file and backing chain).
std::vector<std::string> files_used(const Facts& facts);
// The destination is an absolute path, no other disk's (dests: those
// checked so far, destination -> disk) and no file the VM uses by its name.
void check_path(const Choice& choice, const std::vector<std::string>& used,
                std::map<std::string, std::string>& dests);
// The destination's directory is there.
void check_dir(const Facts& facts, const Choice& choice);
// A file at the destination: never one the VM uses (through a link or
// another name), replaced only with --force and only if no defined VM uses
// it. Sets m.replace_existing and m.replaces; returns the note that says so.
std::optional<std::string> check_existing(const Facts& facts, const LiveStorageOptions& options,
                                          const Choice& choice,
                                          const std::vector<std::string>& used, DiskMove& m);
// The bytes the destination needs for a disk: its allocation, and its
// backing chain's unless --shallow.
std::uint64_t need(const Facts& facts, const LiveStorageOptions& options, const Choice& choice);
// Each destination directory has room for its disks and a margin.
void check_space(const Facts& facts, const std::vector<DiskMove>& moves);

}  // namespace vmshift::migrate::live_storage
