#include "migrate/copy_files.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>

#include "base/error.h"
#include "base/format.h"
#include "hosts/libvirt_storage.h"
#include "migrate/job_env.h"
#include "migrate/kind.h"
#include "migrate/live_storage.h"

namespace vmshift::migrate {
namespace {

enum Step : std::size_t { kCheck, kCopy, kVerify };

// Reports the engine's progress as the job's, over all files.
class JobObserver : public transfer::CopyObserver {
 public:
  JobObserver(JobContext& job, std::string_view phase, std::uint64_t before, std::uint64_t total,
              const std::function<void()>& save)
      : job_(job), phase_(phase), before_(before), total_(total), save_(save) {}
  void progress(std::uint64_t done, std::uint64_t) override {
    job_.progress(phase_, before_ + done, total_);
  }
  void chunk_done(const transfer::Journal&) override { save_(); }
  bool cancel_requested() override { return job_.cancel_requested(); }
  // Where the file the engine makes is recorded.
  void record_into(std::vector<Created>* created, hosts::MigrationHost* host, std::string path) {
    created_ = created;
    host_ = host;
    path_ = std::move(path);
  }
  void created() override {
    if (created_ == nullptr || has_created(*created_, host_->name(), path_)) return;
    created_->push_back(record_created(host_->storage(), host_->name(), path_));
    save_();
  }

 private:
  std::vector<Created>* created_ = nullptr;
  hosts::MigrationHost* host_ = nullptr;
  std::string path_;
  JobContext& job_;
  std::string phase_;
  std::uint64_t before_, total_;
  const std::function<void()>& save_;
};

}  // namespace

transfer::CopyStats copy_files(Site& from, Site& to, std::vector<FileCopy>& files,
                               const transfer::CopyOptions& o, JobContext& job,
                               std::string_view phase, const std::function<void()>& save,
                               std::vector<Created>* created) {
  std::vector<std::uint64_t> lengths;
  std::uint64_t total = 0;
  for (auto& f : files) {
    lengths.push_back(from.open(f.from)->length());
    total += lengths.back();
  }
  transfer::CopyStats sum;
  std::uint64_t before = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    FileCopy& f = files[i];
    if (!f.done) {
      std::unique_ptr<transfer::Endpoint> src = from.open(f.from);
      std::unique_ptr<transfer::Endpoint> dst = to.open(f.to);
      JobObserver obs(job, phase, before, total, save);
      obs.record_into(created, &to.host, f.to);
      transfer::CopyStats st = transfer::copy(*src, *dst, f.journal, o, obs);
      f.done = true;
      save();
      sum.chunks_copied += st.chunks_copied;
      sum.chunks_skipped += st.chunks_skipped;
      sum.data_bytes += st.data_bytes;
      sum.hole_bytes += st.hole_bytes;
      sum.took += st.took;
    }
    before += lengths[i];
  }
  job.progress(phase, total, total);
  return sum;
}

std::vector<std::string> verify_files(Site& from, Site& to, const std::vector<FileCopy>& files,
                                      JobContext& job) {
  std::vector<std::string> problems;
  for (const auto& f : files) {
    std::unique_ptr<transfer::Endpoint> src = from.open(f.from);
    std::unique_ptr<transfer::Endpoint> dst = to.open(f.to);
    std::uint64_t length = src->length();
    transfer::VerifyResult v = transfer::verify(*src, *dst, f.journal.chunk_size);
    job.progress("verify", length, length);
    if (!v.ok())
      problems.push_back(fmt::format("{} differs from {} in {} of {} chunks (the first at byte {})",
                                     dst->describe(), src->describe(), v.mismatched.size(),
                                     v.chunks, v.mismatched.front() * f.journal.chunk_size));
  }
  return problems;
}

bool same_file_across(Site& from, const std::string& from_path, Site& to,
                      const std::string& to_path) {
  if (!to.host.storage().exists(to_path)) return false;
  if (from.host.name() == to.host.name())
    return from_path == to_path || to.host.storage().same_file(from_path, to_path);
  if (hosts::basename_of(from_path) != hosts::basename_of(to_path)) return false;
  // Two hosts: the same directory if a probe made through one appears
  // through the other.
  static std::atomic<int> counter{0};
  std::string name = fmt::format(".vmshift-probe-{}-{}", ::getpid(), ++counter);
  std::string probe_to = hosts::dirname_of(to_path) + "/" + name;
  std::string probe_from = hosts::dirname_of(from_path) + "/" + name;
  to.host.storage().create_image({.path = probe_to, .format = "raw", .capacity = 0});
  Created mine = record_created(to.host.storage(), to.host.name(), probe_to);
  bool seen = false;
  try {
    seen = from.host.storage().exists(probe_from);
  } catch (const Error&) {
    remove_created(to.host.storage(), mine);
    throw;
  }
  remove_created(to.host.storage(), mine);
  return seen;
}

std::vector<std::string> copy_job_steps() { return {"check", "copy", "verify"}; }

Result run_copy_job(Site& from, Site& to, const CopyJobOptions& o, const std::string& saved_state,
                    JobContext& job, const std::map<std::string, std::string>& in_use) {
  CopyJobState state;
  bool resumed = false;
  if (!saved_state.empty() && saved_state != "{}") {
    state = codec::parse<CopyJobState>(saved_state, "saved state");
    resumed = true;
  } else {
    state.files.push_back(FileCopy{.from = o.from_path, .to = o.to_path});
  }
  std::vector<FileCopy>& files = state.files;
  std::vector<Created>& created = state.created;
  auto save = [&] { job.save_state(codec::dump(state)); };
  std::string src_name = from.open(o.from_path)->describe();
  std::string dst_name = to.open(o.to_path)->describe();

  // ---- check
  if (!from.open(o.from_path)->exists()) {
    job.step(kCheck, StepState::kFailed, "no source file");
    return {Outcome::kFailed,
            fmt::format("Refused: there is no file {}. Nothing was changed.", src_name)};
  }
  // Never the source itself (also through a link, or the same file of
  // shared storage through another host), whatever --force says.
  bool same = false;
  try {
    same = same_file_across(from, o.from_path, to, o.to_path);
  } catch (const Error& e) {
    job.step(kCheck, StepState::kFailed, e.what());
    return {Outcome::kFailed,
            fmt::format("Refused: {} exists, and whether it is the source {} cannot be checked: "
                        "{}. Nothing was changed.",
                        dst_name, src_name, e.what())};
  }
  if (same) {
    job.step(kCheck, StepState::kFailed, "source and destination are the same file");
    return {Outcome::kFailed,
            fmt::format("Refused: {} is the source itself. Nothing was changed.", dst_name)};
  }
  std::string replaced;
  if (!resumed && to.open(o.to_path)->exists()) {
    if (!o.force) {
      job.step(kCheck, StepState::kFailed, "the destination exists");
      return {Outcome::kFailed,
              fmt::format("Refused: {} already exists (--force replaces it). Nothing was changed.",
                          dst_name)};
    }
    if (auto it = in_use.find(o.to_path); it != in_use.end()) {
      job.step(kCheck, StepState::kFailed, fmt::format("{} uses the destination", it->second));
      return {Outcome::kFailed,
              fmt::format("Refused: {} is a file {} uses; --force never replaces a file a defined "
                          "VM uses. Nothing was changed.",
                          dst_name, it->second)};
    }
    to.open(o.to_path)->remove();
    replaced = fmt::format("; replaced the former {} (--force)", dst_name);
  }
  job.step(kCheck, StepState::kDone,
           resumed ? fmt::format("resuming: {} of {} chunks were done",
                                 files[0].journal.done.size(), files[0].journal.chunks())
                   : fmt::format("{} -> {}{}", src_name, dst_name, replaced));

  // ---- copy
  job.step(kCopy, StepState::kRunning);
  save();
  transfer::CopyStats st;
  try {
    st = copy_files(from, to, files, {.chunk_size = o.chunk_size, .bandwidth = o.bandwidth}, job,
                    "copy", save, &created);
  } catch (const Error& e) {
    const FileCopy& f = files[0];
    std::string where = fmt::format(
        "{} of {} chunks are done at {}; `vmshift jobs resume` "
        "continues from there",
        f.journal.done.size(), f.journal.chunks(), dst_name);
    bool cancelled = e.code() == ErrorCode::kCancelled;
    job.step(kCopy, cancelled ? StepState::kUndone : StepState::kFailed, e.what());
    if (cancelled) {
      // A cancel ends the copy for good: its partial file goes, if it is
      // still the file this job made.
      std::vector<std::string> problems;
      bool made = !created.empty();
      remove_all_created(to.host.storage(), to.host.name(), created, problems);
      save();
      return {Outcome::kCancelled,
              with_problems(made && problems.empty()
                                ? fmt::format("Cancelled by request; the partial copy {} was "
                                              "removed; the source is unchanged.",
                                              dst_name)
                                : fmt::format("Cancelled by request; the source is unchanged"),
                            problems)};
    }
    return {Outcome::kFailed, fmt::format("The copy stopped: {}. {}.", e.what(), where)};
  }
  std::string detail =
      fmt::format("{} chunks copied{}, {} of data, {} of holes, in {:.1f} s", st.chunks_copied,
                  st.chunks_skipped > 0 ? fmt::format(" ({} done before)", st.chunks_skipped) : "",
                  human_bytes(st.data_bytes), human_bytes(st.hole_bytes),
                  static_cast<double>(st.took.count()) / 1000.0);
  job.step(kCopy, StepState::kDone, detail);

  // ---- verify
  if (!o.verify) {
    job.step(kVerify, StepState::kSkipped, "not asked (--verify)");
  } else {
    job.step(kVerify, StepState::kRunning);
    std::vector<std::string> problems = verify_files(from, to, files, job);
    if (!problems.empty()) {
      job.step(kVerify, StepState::kFailed, problems.front());
      return {Outcome::kFailed,
              fmt::format("The copy does not match its source: {}. The copy was kept for "
                          "inspection; the source is unchanged.",
                          fmt::join(problems, "; "))};
    }
    job.step(kVerify, StepState::kDone, "source and copy have the same checksums");
  }
  return {Outcome::kCompleted, fmt::format("copied {} to {}: {}", src_name, dst_name, detail)};
}

Json copy_params(const CopyJobOptions& options) {
  return Json::object().set("options", codec::encode(options));
}

std::string chunks_copied(const std::string& state) {
  std::uint64_t done = 0, all = 0;
  try {
    for (const Json& f : Json::parse(state).get("files").items()) {
      auto j = codec::decode<transfer::Journal>(f.get("journal"), "journal");
      done += j.done.size();
      all += j.chunks();
    }
  } catch (const Error&) {
  }
  return fmt::format("{} of {} chunks", done, all);
}

const JobKind& copy_kind() {
  static const JobKind kind{
      .id = Kind::kCopy,
      .steps = copy_job_steps(),
      .slots = {{Side::kSource, Limit::kStorage}, {Side::kDest, Limit::kStorage}},
      .run = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        CopyJobOptions o =
            codec::decode<CopyJobOptions>(Json::parse(job.params).get("options"), "options");
        std::unique_ptr<OpenSite> from = env.open_site(o.from_host);
        std::unique_ptr<OpenSite> to = env.open_site(o.to_host);
        std::map<std::string, std::string> in_use;
        if (o.force) {
          try {
            in_use = env.files_in_use(o.to_host, o.to_path);
          } catch (const Error& e) {
            return {Outcome::kFailed,
                    fmt::format("Refused: --force, but which VMs use {}:{} cannot be checked: {}. "
                                "Nothing was changed.",
                                o.to_host, o.to_path, e.what())};
          }
        }
        return run_copy_job(from->site(), to->site(), o, job.state, ctx, in_use);
      },
      .recover = nullptr,
      // Nothing to undo: the copy's journal lets it resume.
      .resume = JobKind::Resume{.continues = "copy", .done_so_far = chunks_copied},
      .files = nullptr,
      .memory_rate = nullptr,
  };
  return kind;
}

}  // namespace vmshift::migrate
