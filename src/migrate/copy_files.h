// Copying files between two hosts with the copy engine, as a step of a
// job: progress to the job, each file's journal saved in the job's state
// after every chunk, so that a job whose process died or that failed
// half-way resumes where it stopped (`vmshift jobs resume ID`).
//
// Also the `vmshift copy` job itself: one file from one host to another
// (or the same), with an optional end-to-end verify.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/json.h"
#include "hosts/migration.h"
#include "migrate/context.h"
#include "migrate/created.h"
#include "transfer/copy_engine.h"

namespace vmshift::migrate {

using FileOpener = std::function<std::unique_ptr<transfer::Endpoint>(const std::string& path)>;

// A host and how to read and write its files.
struct Site {
  hosts::MigrationHost& host;
  FileOpener open;
};

struct FileCopy {
  std::string from;  // path on the source site
  std::string to;    // path on the destination site
  transfer::Journal journal;
  bool done = false;
};

// Copies every file not done yet, continuing each one's journal. save()
// is called after every chunk (the caller saves the job's state). Throws
// Error(kCancelled) on a cancel, or the engine's errors; what was done
// stays recorded in the files' journals. Each destination file the engine
// makes is recorded in `created` (when given) right after it was made,
// and save() called.
transfer::CopyStats copy_files(Site& from, Site& to, std::vector<FileCopy>& files,
                               const transfer::CopyOptions& options, JobContext& job,
                               std::string_view phase, const std::function<void()>& save,
                               std::vector<Created>* created = nullptr);

// Whether a file of `to` is the file `from_path` of `from` (the same host:
// the same path, a link, another name of its directory; two hosts: the
// same directory, seen through both, under the same name -- a probe file
// made in one directory appears in the other). False if `to_path` does
// not exist.
bool same_file_across(Site& from, const std::string& from_path, Site& to,
                      const std::string& to_path);

// Compares every file's copy with its source, chunk by chunk. Returns the
// problems as sentences (empty: all identical).
std::vector<std::string> verify_files(Site& from, Site& to, const std::vector<FileCopy>& files,
                                      JobContext& job);

// ---- vmshift copy

struct CopyJobOptions {
  std::string from_host, from_path, to_host, to_path;
  std::uint64_t bandwidth = 0;
  std::uint64_t chunk_size = transfer::kDefaultChunk;
  bool verify = false;  // compare source and copy end to end afterwards
  bool force = false;   // replace an existing destination file (not on resume)
};

// What a copy job saves; a resumed job continues from it.
struct CopyJobState {
  std::vector<FileCopy> files;
  std::vector<Created> created;  // the destination, once the copy made it
};

std::vector<std::string> copy_job_steps();  // check, copy, verify

// The params of a copy job (the JobKind is in copy_files.cc).
Json copy_params(const CopyJobOptions& options);

// Chunks done / in all of the copies a copy or network job's saved state
// records: "3 of 8 chunks" ("0 of 0 chunks" when it records none).
std::string chunks_copied(const std::string& saved_state);

// Runs (or, with the state a former run saved, resumes) a copy job.
// in_use: files defined VMs use on the hosts that see the destination,
// path -> who; --force never replaces one of those.
Result run_copy_job(Site& from, Site& to, const CopyJobOptions& options,
                    const std::string& saved_state, JobContext& job,
                    const std::map<std::string, std::string>& in_use = {});

}  // namespace vmshift::migrate

template <>
struct vmshift::codec::Fields<vmshift::migrate::FileCopy> {
  using T = migrate::FileCopy;
  static constexpr auto list = std::tuple{field("from", &T::from), field("to", &T::to),
                                          field("journal", &T::journal), field("done", &T::done)};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::CopyJobOptions> {
  using T = migrate::CopyJobOptions;
  static constexpr auto list =
      std::tuple{field("from_host", &T::from_host), field("from_path", &T::from_path),
                 field("to_host", &T::to_host),     field("to_path", &T::to_path),
                 field("bandwidth", &T::bandwidth), field("chunk_size", &T::chunk_size),
                 field("verify", &T::verify),       field("force", &T::force)};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::CopyJobState> {
  using T = migrate::CopyJobState;
  static constexpr auto list = std::tuple{
      field("files", &T::files), field("created", &T::created, migrate::created_list).or_default()};
};
