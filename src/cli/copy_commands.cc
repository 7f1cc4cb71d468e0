#include "cli/copy_commands.h"

#include <fmt/format.h>

#include "base/error.h"
#include "cli/job_commands.h"
#include "core/runner.h"
#include "qmp/json.h"

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

int copy(const CopyArgs& a, const hosts::Inventory& inv, const std::string& store_path,
         const std::atomic<bool>* interrupted) {
  migrate::CopyJobOptions o;
  std::tie(o.from_host, o.from_path) = host_path(a.from, inv);
  std::tie(o.to_host, o.to_path) = host_path(a.to, inv);
  if (a.bandwidth_mib < 0)
    throw Error(ErrorCode::kInvalidArgument, "--bandwidth cannot be negative");
  o.bandwidth = static_cast<std::uint64_t>(a.bandwidth_mib * 1024 * 1024);
  o.chunk_size = chunk_bytes(a.chunk_mib);
  o.verify = a.verify;
  o.force = a.force;
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
    qmp::Json bad = qmp::Json::array();
    for (auto i : c.result.mismatched) bad.push(qmp::Json::integer(static_cast<std::int64_t>(i)));
    fmt::print("{}\n",
               qmp::Json::object()
                   .set("same", qmp::Json::boolean(c.result.ok()))
                   .set("chunks", qmp::Json::integer(static_cast<std::int64_t>(c.result.chunks)))
                   .set("chunk_size", qmp::Json::integer(static_cast<std::int64_t>(c.chunk_size)))
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

int jobs_resume(const std::string& store_path, std::int64_t id, const hosts::Inventory& inv,
                bool json, bool detach, const std::atomic<bool>* interrupted) {
  {
    core::JobStore store = core::JobStore::open(store_path);
    core::Job j = store.get(id);
    if (!core::resumable(j.type))
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("job {} is a {} job, which cannot be resumed (only copies and "
                              "network migrations continue where they stopped)",
                              id, j.type));
    if (!store.reopen(id))
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("job {} is {}: only a failed job can be resumed", id,
                              core::to_string(j.state)));
  }
  return start_job(store_path, id, inv, json, detach, 3600, interrupted);
}

}  // namespace vmshift::cli
