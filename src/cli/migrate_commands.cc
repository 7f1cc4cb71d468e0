#include "cli/migrate_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "base/bandwidth.h"
#include "base/error.h"
#include "base/format.h"
#include "base/json.h"
#include "cli/command.h"
#include "cli/job_commands.h"
#include "cli/table.h"
#include "core/preflight.h"
#include "core/runner.h"
#include "hosts/domain.h"
#include "hosts/libvirt.h"
#include "hosts/xml.h"
#include "migrate/kind.h"

namespace vmshift::cli {

namespace {

std::string secs(std::chrono::milliseconds ms) {
  return fmt::format("{:.1f} s", static_cast<double>(ms.count()) / 1000.0);
}

std::string rate_text(std::optional<double> bytes_per_s) {
  if (!bytes_per_s) return "unknown";
  return human_bytes(static_cast<std::uint64_t>(*bytes_per_s)) + "/s";
}

Json plan_json(const core::Preflight& pf) {
  const core::MigrationPlan& p = pf.plan;
  Json checks = Json::array();
  for (const auto& c : p.checks)
    checks.push(Json::object()
                    .set("name", Json::string(c.name))
                    .set("status", Json::string(core::to_string(c.status)))
                    .set("reason", Json::string(c.reason)));
  Json notes = Json::array();
  for (const auto& n : p.notes) notes.push(Json::string(n));
  Json j = Json::object()
               .set("vm", Json::string(p.live.vm))
               .set("source_host", Json::string(p.live.source_host))
               .set("dest_host", Json::string(p.live.dest_host))
               .set("type", Json::string(migrate::kind_name(p.type)))
               .set("why", Json::string(p.why))
               .set("ok", Json::boolean(p.ok()))
               .set("checks", checks)
               .set("notes", notes)
               .set("plan", codec::encode(p.live))
               .set("link_rate", Json::number(p.link.bytes_per_s))
               .set("link_basis", Json::string(p.link.basis));
  if (pf.guest.dirty_bytes_per_s) j.set("dirty_rate", Json::number(*pf.guest.dirty_bytes_per_s));
  if (pf.guest.disk_write_bytes_per_s)
    j.set("disk_write_rate", Json::number(*pf.guest.disk_write_bytes_per_s));
  const migrate::Prediction& pr = p.live.prediction;
  j.set("prediction", Json::object()
                          .set("total_ms", Json::integer(pr.total.count()))
                          .set("pause_ms", Json::integer(pr.pause.count()))
                          .set("disk_ms", Json::integer(pr.disk_time.count()))
                          .set("memory_ms", Json::integer(pr.memory_time.count()))
                          .set("passes", Json::integer(pr.passes))
                          .set("converges", Json::boolean(pr.converges)));
  return j;
}

void print_plan(const core::Preflight& pf, std::FILE* out) {
  const core::MigrationPlan& p = pf.plan;
  fmt::print(out, "plan: VM '{}' from host '{}' to host '{}'\n", p.live.vm, p.live.source_host,
             p.live.dest_host);
  fmt::print(out, "type: {} ({})\n", migrate::kind_name(p.type), p.why);
  fmt::print(out, "checks:\n");
  std::size_t width = 0;
  for (const auto& c : p.checks) width = std::max(width, c.name.size());
  for (const auto& c : p.checks)
    fmt::print(out, "  {:<4}  {:<{}}  {}\n", core::to_string(c.status), c.name, width, c.reason);
  if (!p.live.copies.empty()) {
    fmt::print(out, "disks copied:\n");
    for (const auto& m : p.live.copies)
      fmt::print(out, "  {}: {} -> {}:{} ({}, {} allocated)\n", m.target, m.source,
                 p.live.dest_host, m.dest, m.format, human_bytes(m.need));
  }
  if (!p.live.shared.empty()) fmt::print(out, "disks staying on shared storage:\n");
  for (const auto& [t, path] : p.live.shared) fmt::print(out, "  {}: {}\n", t, path);
  const migrate::Prediction& pr = p.live.prediction;
  bool qsm = p.type == migrate::Kind::kQsm;
  if (qsm || p.type == migrate::Kind::kQuick) {
    fmt::print(
        out, "prediction: about {} in all{}, pause about {} ms (save, {}restore)\n", secs(pr.total),
        qsm ? fmt::format(" ({} copying the disks while the VM runs)", secs(pr.disk_time)) : "",
        pr.pause.count(), qsm ? "move the overlays and the state, " : "");
    fmt::print(out, "  from: RAM {}, disk writes {}, link {}\n",
               human_bytes(pf.guest.domain.memory_bytes),
               rate_text(pf.guest.disk_write_bytes_per_s), p.link.basis);
  } else if (p.type == migrate::Kind::kNetwork) {
    fmt::print(out, "prediction: about {} in all, the VM off throughout\n  from: link {}\n",
               secs(pr.total), p.link.basis);
  } else if (pf.guest.state == "running" || pf.guest.state == "paused") {
    fmt::print(out, "prediction: {}\n", pr.explain());
    fmt::print(out, "  from: RAM {}, dirty rate {}, disk writes {}, link {}\n",
               human_bytes(pf.guest.domain.memory_bytes), rate_text(pf.guest.dirty_bytes_per_s),
               rate_text(pf.guest.disk_write_bytes_per_s), p.link.basis);
  }
  for (const auto& n : p.notes) fmt::print(out, "note: {}\n", n);
  if (p.ok())
    fmt::print(out, "result: ready: no check failed\n");
  else
    fmt::print(out, "result: refused: {} check{} failed; nothing was changed\n",
               p.failures().size(), p.failures().size() == 1 ? "" : "s");
}

}  // namespace

core::PlanRequest plan_request(const MigrateArgs& a, const hosts::Inventory& inv) {
  if (!a.to) throw Error(ErrorCode::kInvalidArgument, "say where the VM goes: --to HOST");
  inv.host(*a.to);  // an unknown host names the known ones
  core::PlanRequest r;
  r.vm = a.vm;
  r.source_host = a.host ? (inv.host(*a.host), *a.host) : core::find_vm_host(inv, a.vm);
  migrate::LiveMigrationOptions& o = r.options;
  o.dest_host = *a.to;
  // Any job type parses; one `migrate` does not run is refused by the plan.
  if (a.type) o.type = migrate::parse_kind(*a.type);
  o.storage = a.storage;
  for (const auto& d : a.disks) {
    auto eq = d.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == d.size())
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("--disk '{}' must be TARGET=PATH (e.g. vda=/srv/vm/vda.qcow2)", d));
    o.disks.emplace_back(d.substr(0, eq), d.substr(eq + 1));
  }
  o.bandwidth = bytes_per_s_from_mib(a.bandwidth_mib, "--bandwidth");
  if (a.compress) {
    o.compress = a.compress->empty() ? "xbzrle" : *a.compress;
    if (o.compress != "xbzrle" && o.compress != "mt" && o.compress != "zstd")
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("--compress takes xbzrle, mt or zstd, not '{}'", o.compress));
  }
  if (a.parallel < 0 || a.parallel > 64)
    throw Error(ErrorCode::kInvalidArgument, "--parallel takes 1 to 64 connections");
  o.parallel = a.parallel;
  o.auto_converge = a.auto_converge;
  o.postcopy = a.postcopy;
  if (a.max_downtime_ms < 0)
    throw Error(ErrorCode::kInvalidArgument, "--max-downtime cannot be negative");
  o.max_downtime = std::chrono::milliseconds(a.max_downtime_ms);
  o.timeout_per_gib = std::chrono::seconds(a.timeout_per_gib);
  o.progress_timeout = std::chrono::seconds(a.progress_timeout);
  if (a.timeout_action != "abort" && a.timeout_action != "postcopy" &&
      a.timeout_action != "suspend")
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("--timeout-action takes abort, postcopy or suspend, not '{}'",
                            a.timeout_action));
  if (a.timeout_action == "postcopy" && !a.postcopy)
    throw Error(ErrorCode::kInvalidArgument,
                "--timeout-action postcopy needs --postcopy (post-copy must be allowed from the "
                "start)");
  o.timeout_action = a.timeout_action;
  o.tls = a.tls;
  o.keep_source = a.keep_source;
  o.force = a.force;
  o.shallow = a.shallow;
  o.verify = a.verify;
  o.start = a.start;
  return r;
}

int plan(const MigrateArgs& a, const hosts::Inventory& inv, const std::string& store_path) {
  core::PlanRequest req = plan_request(a, inv);
  core::JobStore store = core::JobStore::open(store_path);
  core::Preflight pf =
      core::preflight(inv, req, &store, core::PreflightOptions{.measure = !a.no_measure});
  if (a.json)
    fmt::print("{}\n", plan_json(pf).dump());
  else
    print_plan(pf, stdout);
  return pf.plan.ok() ? 0 : 1;
}

int migrate(const MigrateArgs& a, const hosts::Inventory& inv, const std::string& store_path,
            const std::atomic<bool>* interrupted) {
  core::PlanRequest req = plan_request(a, inv);
  std::int64_t id;
  {
    core::JobStore store = core::JobStore::open(store_path);
    core::Preflight pf =
        core::preflight(inv, req, &store, core::PreflightOptions{.measure = !a.no_measure});
    if (!a.json) print_plan(pf, stderr);
    if (!pf.plan.ok())
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("refused: {}. Nothing was changed; the VM stays on host '{}'.",
                              fmt::join(pf.plan.failures(), "; "), req.source_host));
    id = core::create_live_migration_job(store, std::string(migrate::kind_name(pf.plan.type)),
                                         pf.plan.live, pf.guest.domain.uuid, req.options);
  }
  return start_job(store_path, id, inv, a.json, a.detach, a.queue_timeout, interrupted);
}

int rate(const std::string& vm, std::optional<std::string> host, const hosts::Inventory& inv,
         const std::string& store_path, bool json) {
  std::string source = host ? (inv.host(*host), *host) : core::find_vm_host(inv, vm);
  core::JobStore store = core::JobStore::open(store_path);
  struct Row {
    std::string host;
    core::Preflight pf;
    core::Rating rating;
  };
  std::vector<Row> rows;
  std::optional<core::GuestView> measured;
  for (const auto& h : inv.hosts()) {
    if (h.name == source) continue;
    core::PlanRequest req;
    req.vm = vm;
    req.source_host = source;
    req.options.dest_host = h.name;
    // The guest is measured once; every destination is planned with it.
    core::Preflight pf =
        core::preflight(inv, req, &store, core::PreflightOptions{.measure = !measured});
    if (!measured && (pf.guest.dirty_bytes_per_s || !pf.guest.measure_note.empty()))
      measured = pf.guest;
    if (measured) {
      pf.guest.dirty_bytes_per_s = measured->dirty_bytes_per_s;
      pf.guest.disk_write_bytes_per_s = measured->disk_write_bytes_per_s;
      pf.guest.measure_note = measured->measure_note;
      pf.plan = core::plan_migration(pf);
    }
    rows.push_back({h.name, std::move(pf), {}});
  }
  std::int64_t fastest = 0;
  for (const auto& r : rows)
    if (r.pf.plan.ok() && (fastest == 0 || r.pf.plan.live.prediction.total.count() < fastest))
      fastest = r.pf.plan.live.prediction.total.count();
  for (auto& r : rows)
    r.rating = core::rate_plan(r.pf.plan, r.pf.dest, r.pf.guest.domain.memory_bytes, fastest);
  std::stable_sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    if (x.rating.stars != y.rating.stars) return x.rating.stars > y.rating.stars;
    return x.pf.plan.live.prediction.total < y.pf.plan.live.prediction.total;
  });
  if (json) {
    Json all = Json::array();
    for (const auto& r : rows)
      all.push(Json::object()
                   .set("host", Json::string(r.host))
                   .set("stars", Json::integer(r.rating.stars))
                   .set("type", Json::string(migrate::kind_name(r.pf.plan.type)))
                   .set("reason", Json::string(r.rating.reason))
                   .set("predicted_ms", Json::integer(r.pf.plan.live.prediction.total.count())));
    fmt::print("{}\n", all.dump());
    return 0;
  }
  fmt::print("destinations for VM '{}' (now on host '{}'), best first:\n", vm, source);
  Table t({"HOST", "RATING", "TYPE", "PREDICTED", "WHY"});
  for (const auto& r : rows) {
    std::string stars = std::string(static_cast<std::size_t>(r.rating.stars), '*') +
                        std::string(static_cast<std::size_t>(5 - r.rating.stars), '.');
    t.add({r.host, stars, std::string(migrate::kind_name(r.pf.plan.type)),
           r.pf.plan.ok() ? secs(r.pf.plan.live.prediction.total) : "-", r.rating.reason});
  }
  if (t.empty())
    fmt::print("no other host in the inventory {}\n", inv.source());
  else
    fmt::print("{}", t.render());
  return 0;
}

void add_migrate_options(CLI::App* cmd, MigrateArgs& a) {
  cmd->add_option("VM", a.vm, "The VM (a libvirt domain name)")->required();
  cmd->add_option("--to", a.to, "The destination host (from the inventory)")->required();
  cmd->add_option("--host", a.host, "The VM's host now (default: the one that has it)");
  cmd->add_option("--type", a.type,
                  "Force a transfer type: live, live-vsm, qsm, quick, network (default: chosen "
                  "from the VM's state and storage)");
  cmd->add_option("--storage", a.storage,
                  "Copy the disks into this storage location of the destination");
  cmd->add_option("--disk", a.disks, "TARGET=PATH: copy this disk to PATH on the destination");
  cmd->add_option("--bandwidth", a.bandwidth_mib, "At most this many MiB/s");
  cmd->add_option("--compress", a.compress,
                  "Compress memory: xbzrle (default), mt (multi-threaded), or zstd over multifd "
                  "(--parallel; libvirt 9.4+)")
      ->expected(0, 1)
      ->default_str("");
  cmd->add_option("--parallel", a.parallel, "Memory over N connections (multifd)");
  cmd->add_flag("--auto-converge", a.auto_converge,
                "Slow the guest's CPUs down if it dirties memory faster than the link carries");
  cmd->add_flag("--postcopy", a.postcopy,
                "Allow switching to post-copy (the VM runs on the destination while the rest of "
                "its memory follows)");
  cmd->add_option("--max-downtime", a.max_downtime_ms,
                  "The longest pause at the switch-over, ms (QEMU's default: 300)");
  cmd->add_option("--timeout-per-gib", a.timeout_per_gib,
                  "Give up (see --timeout-action) after this many seconds per GiB to move");
  cmd->add_option("--progress-timeout", a.progress_timeout,
                  "Give up (see --timeout-action) after this many seconds without progress")
      ->capture_default_str();
  cmd->add_option("--timeout-action", a.timeout_action,
                  "On a timeout: abort (the VM stays on the source), postcopy, or suspend (pause "
                  "the guest so the rest converges)")
      ->capture_default_str();
  cmd->add_flag("--tls", a.tls, "Encrypt the migration with libvirt's TLS");
  cmd->add_flag("--keep-source", a.keep_source, "Keep the source's disk files after a copy");
  cmd->add_flag("--force", a.force, "Replace existing destination files");
  cmd->add_flag("--shallow", a.shallow,
                "Copy only the disks' top layers; their backing files must be on the "
                "destination already (shared storage)");
  cmd->add_flag("--verify", a.verify,
                "qsm, network: compare every copy with its source (checksums) before using it");
  cmd->add_flag("--start", a.start, "network: start the VM on the destination afterwards");
  cmd->add_flag("--no-measure", a.no_measure,
                "Predict without measuring the guest's dirty rate and disk writes first (saves "
                "about a second; the prediction then assumes an idle guest)");
  cmd->add_flag("--json", a.json, "JSON output");
}

namespace {

struct RateArgs {
  std::string vm;
  std::optional<std::string> host;
  bool json = false;
};

}  // namespace

void register_migrate_commands(CLI::App& app, Registry& registry) {
  // plan and migrate share their options (a command line is one of them).
  auto ma = std::make_shared<MigrateArgs>();
  auto* plan_cmd = app.add_subcommand(
      "plan", "Show how a VM would move to a host: the transfer type, every check, a prediction");
  add_migrate_options(plan_cmd, *ma);
  registry.on(plan_cmd, [ma](Session& s) {
    s.jobs();
    return plan(*ma, s.inventory(), s.store_path());
  });

  auto* migrate_cmd =
      app.add_subcommand("migrate", "Move a VM to another host, or its disks (--type qsm)");
  add_migrate_options(migrate_cmd, *ma);
  migrate_cmd->add_flag("--detach", ma->detach, "Run in the background; print the job id");
  migrate_cmd
      ->add_option("--queue-timeout", ma->queue_timeout,
                   "Give up after waiting this many seconds for a free slot")
      ->capture_default_str();
  registry.on(migrate_cmd, [ma](Session& s) {
    s.jobs();
    return migrate(*ma, s.inventory(), s.store_path(), s.interrupted());
  });

  auto ra = std::make_shared<RateArgs>();
  auto* rate_cmd = app.add_subcommand("rate", "Rank every host as a destination for a VM");
  rate_cmd->add_option("VM", ra->vm, "The VM")->required();
  rate_cmd->add_option("--host", ra->host, "The VM's host now (default: the one that has it)");
  rate_cmd->add_flag("--json", ra->json, "JSON instead of a table");
  registry.on(rate_cmd, [ra](Session& s) {
    s.jobs();
    return rate(ra->vm, ra->host, s.inventory(), s.store_path(), ra->json);
  });
}

}  // namespace vmshift::cli
