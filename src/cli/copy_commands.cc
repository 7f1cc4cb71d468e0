#include "cli/copy_commands.h"

#include <fmt/format.h>

#include <memory>

#include "base/bandwidth.h"
#include "base/error.h"
#include "base/json.h"
#include "cli/command.h"
#include "cli/job_commands.h"
#include "core/runner.h"

namespace vmshift::cli {
namespace {

// "host1:/var/lib/libvirt/images/a.qcow2" -> host, path.
std::pair<std::string, std::string> host_path(const std::string& arg, const hosts::Inventory& inv) {
  auto colon = arg.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= arg.size() || arg[colon + 1] != '/')
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("'{}' must be HOST:/ABSOLUTE/PATH (e.g. host1:/var/lib/libvirt/"
                            "images/a.qcow2)",
                            arg));
  std::string host = arg.substr(0, colon);
  inv.host(host);  // an unknown host names the known ones
  return {host, arg.substr(colon + 1)};
}

std::uint64_t chunk_bytes(int mib) {
  if (mib < 1 || mib > 4096)
    throw Error(ErrorCode::kInvalidArgument, "--chunk-mib takes 1 to 4096");
  return static_cast<std::uint64_t>(mib) << 20;
}

}  // namespace

migrate::CopyJobOptions copy_options(const CopyArgs& a, const hosts::Inventory& inv) {
  migrate::CopyJobOptions o;
  std::tie(o.from_host, o.from_path) = host_path(a.from, inv);
  std::tie(o.to_host, o.to_path) = host_path(a.to, inv);
  o.bandwidth = bytes_per_s_from_mib(a.bandwidth_mib, "--bandwidth");
  o.chunk_size = chunk_bytes(a.chunk_mib);
  o.verify = a.verify;
  o.force = a.force;
  return o;
}

int copy(const CopyArgs& a, const hosts::Inventory& inv, const std::string& store_path,
         const std::atomic<bool>* interrupted) {
  migrate::CopyJobOptions o = copy_options(a, inv);
  std::int64_t id;
  {
    core::JobStore store = core::JobStore::open(store_path);
    id = core::create_copy_job(store, o);
  }
  return start_job(store_path, id, inv, a.json, a.detach, a.queue_timeout, interrupted);
}

int compare(const std::string& a, const std::string& b, int chunk_mib, const hosts::Inventory& inv,
            bool json) {
  auto [ha, pa] = host_path(a, inv);
  auto [hb, pb] = host_path(b, inv);
  core::Comparison c = core::compare_files(inv, ha, pa, hb, pb, chunk_bytes(chunk_mib));
  if (json) {
    Json bad = Json::array();
    for (auto i : c.result.mismatched) bad.push(Json::integer(static_cast<std::int64_t>(i)));
    fmt::print("{}\n",
               Json::object()
                   .set("same", Json::boolean(c.result.ok()))
                   .set("chunks", Json::integer(static_cast<std::int64_t>(c.result.chunks)))
                   .set("chunk_size", Json::integer(static_cast<std::int64_t>(c.chunk_size)))
                   .set("mismatched", bad)
                   .dump());
  } else if (c.result.ok()) {
    fmt::print("{} and {} are the same ({} chunks of {} MiB compared)\n", c.a, c.b, c.result.chunks,
               c.chunk_size >> 20);
  } else {
    fmt::print("{} and {} differ in {} of {} chunks of {} MiB:", c.a, c.b,
               c.result.mismatched.size(), c.result.chunks, c.chunk_size >> 20);
    for (auto i : c.result.mismatched)
      fmt::print(" {} (bytes {}-{})", i, i * c.chunk_size, (i + 1) * c.chunk_size - 1);
    fmt::print("\n");
  }
  return c.result.ok() ? 0 : 1;
}

void add_copy_options(CLI::App* cmd, CopyArgs& a) {
  cmd->add_option("FROM", a.from, "HOST:/PATH of the source")->required();
  cmd->add_option("TO", a.to, "HOST:/PATH of the copy")->required();
  cmd->add_option("--bandwidth", a.bandwidth_mib, "At most this many MiB/s of data");
  cmd->add_option("--chunk-mib", a.chunk_mib, "Chunk size (checksummed, resumable unit)")
      ->capture_default_str();
  cmd->add_flag("--verify", a.verify, "Compare source and copy end to end afterwards");
  cmd->add_flag("--force", a.force, "Replace an existing destination file");
  cmd->add_flag("--detach", a.detach, "Run in the background; print the job id");
  cmd->add_flag("--json", a.json, "Progress as one JSON object per line");
}

namespace {

struct CompareArgs {
  std::string a, b;
  int chunk_mib = 64;
  bool json = false;
};

}  // namespace

void register_copy_commands(CLI::App& app, Registry& registry) {
  auto ca = std::make_shared<CopyArgs>();
  auto* copy_cmd = app.add_subcommand(
      "copy", "Copy an image file between hosts (or on one): sparse, checksummed, resumable");
  add_copy_options(copy_cmd, *ca);
  registry.on(copy_cmd, [ca](Session& s) {
    s.jobs();
    return copy(*ca, s.inventory(), s.store_path(), s.interrupted());
  });

  auto cmp = std::make_shared<CompareArgs>();
  auto* compare_cmd =
      app.add_subcommand("compare", "Compare two image files chunk by chunk (checksums)");
  compare_cmd->add_option("A", cmp->a, "HOST:/PATH")->required();
  compare_cmd->add_option("B", cmp->b, "HOST:/PATH")->required();
  compare_cmd->add_option("--chunk-mib", cmp->chunk_mib, "Chunk size")->capture_default_str();
  compare_cmd->add_flag("--json", cmp->json, "One JSON document");
  registry.on(compare_cmd, [cmp](Session& s) {
    return compare(cmp->a, cmp->b, cmp->chunk_mib, s.inventory(), cmp->json);
  });
}

}  // namespace vmshift::cli
