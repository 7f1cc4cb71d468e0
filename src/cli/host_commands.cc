#include "cli/host_commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>

#include "base/format.h"
#include "base/json.h"
#include "cli/command.h"
#include "cli/table.h"
#include "guest/libvirt_guest.h"
#include "hosts/domain.h"
#include "hosts/libvirt.h"
#include "hosts/libvirt_storage.h"
#include "hosts/xml.h"
#include "migrate/live_storage.h"

namespace vmshift::cli {

int list_hosts(const hosts::Inventory& inv, bool json) {
  Table table({"HOST", "STATE", "CPU", "FREE MEMORY", "STORAGE (FREE)"});
  Json all = Json::array();
  int unreachable = 0;
  for (const auto& h : inv.hosts()) {
    Json j = Json::object().set("name", Json::string(h.name)).set("uri", Json::string(h.uri));
    try {
      hosts::Connection conn = hosts::Connection::open(h.uri, h.name);
      hosts::Xml caps = hosts::Xml::parse(conn.capabilities());
      std::string cpu = caps.text("/capabilities/host/cpu/model");
      std::string arch = caps.text("/capabilities/host/cpu/arch");
      std::uint64_t mem = conn.free_memory();
      hosts::LibvirtStorage storage(conn);
      std::string where;
      Json locations = Json::array();
      for (const auto& s : inv.storage_of(h.name)) {
        std::string free;
        Json loc = Json::object()
                       .set("name", Json::string(s.name))
                       .set("path", Json::string(s.path))
                       .set("shared", Json::boolean(s.shared));
        try {
          auto bytes = storage.free_bytes(s.path);
          free = bytes ? human_bytes(*bytes) : "?";
          if (bytes) loc.set("free_bytes", Json::integer(static_cast<std::int64_t>(*bytes)));
        } catch (const Error& e) {
          free = "unreachable";
          loc.set("error", Json::string(e.what()));
        }
        where += fmt::format("{}{} {}{} ({})", where.empty() ? "" : "; ", s.name, s.path,
                             s.shared ? " [shared]" : "", free);
        locations.push(loc);
      }
      table.add({h.name, "up", cpu.empty() ? arch : cpu, human_bytes(mem), where});
      j.set("state", Json::string("up"))
          .set("cpu", Json::string(cpu.empty() ? arch : cpu))
          .set("free_memory", Json::integer(static_cast<std::int64_t>(mem)))
          .set("storage", locations);
    } catch (const Error& e) {
      ++unreachable;
      table.add({h.name, "unreachable", "", "", e.what()});
      j.set("state", Json::string("unreachable")).set("error", Json::string(e.what()));
    }
    all.push(j);
  }
  if (json) {
    fmt::print("{}\n", all.dump());
  } else {
    fmt::print("inventory: {}\n{}", inv.source(), table.render());
  }
  return unreachable > 0 ? 1 : 0;
}

int list_vms(const hosts::Inventory& inv, const std::optional<std::string>& only, bool json) {
  if (only) inv.host(*only);  // unknown host: error naming the known ones
  Table table({"HOST", "VM", "STATE", "DISK", "FORMAT", "SIZE", "ALLOCATED", "PATH", "BACKING"});
  Json all = Json::array();
  int failures = 0;
  for (const auto& h : inv.hosts()) {
    if (only && h.name != *only) continue;
    try {
      hosts::Connection conn = hosts::Connection::open(h.uri, h.name);
      for (const auto& name : conn.domain_names()) {
        guest::LibvirtGuest g(conn, name);
        std::string state = g.state();
        std::vector<guest::DiskInfo> disks = g.disks();
        Json jd = Json::array();
        bool first = true;
        for (const auto& d : disks) {
          std::string backing;
          Json chain = Json::array();
          for (const auto& b : d.backing) {
            backing += (backing.empty() ? "" : " <- ") + b;
            chain.push(Json::string(b));
          }
          table.add({first ? h.name : "", first ? name : "", first ? state : "", d.target, d.format,
                     d.capacity ? human_bytes(d.capacity) : "-", human_bytes(d.allocation), d.path,
                     backing.empty() ? "-" : backing});
          first = false;
          jd.push(Json::object()
                      .set("target", Json::string(d.target))
                      .set("path", Json::string(d.path))
                      .set("format", Json::string(d.format))
                      .set("capacity", Json::integer(static_cast<std::int64_t>(d.capacity)))
                      .set("allocation", Json::integer(static_cast<std::int64_t>(d.allocation)))
                      .set("backing", chain));
        }
        if (disks.empty()) table.add({h.name, name, state, "-"});
        all.push(Json::object()
                     .set("host", Json::string(h.name))
                     .set("name", Json::string(name))
                     .set("state", Json::string(state))
                     .set("disks", jd));
      }
    } catch (const Error& e) {
      ++failures;
      table.add({h.name, "(unreachable)", "", "", "", "", "", e.what()});
      all.push(
          Json::object().set("host", Json::string(h.name)).set("error", Json::string(e.what())));
    }
  }
  if (json)
    fmt::print("{}\n", all.dump());
  else
    fmt::print("{}", table.render());
  return failures > 0 ? 1 : 0;
}

int hosts_baseline(const hosts::Inventory& inv, bool json) {
  struct HostCpu {
    std::string name;
    hosts::Connection conn;
    std::string cpu_xml;
    std::string model;
  };
  std::vector<HostCpu> up;
  std::vector<std::string> unreachable;
  for (const auto& h : inv.hosts()) {
    try {
      hosts::Connection c = hosts::Connection::open(h.uri, h.name);
      hosts::Xml caps = hosts::Xml::parse(c.capabilities());
      up.push_back({h.name, c, caps.element("/capabilities/host/cpu"),
                    caps.text("/capabilities/host/cpu/model")});
    } catch (const Error& e) {
      unreachable.push_back(fmt::format("{} ({})", h.name, e.what()));
    }
  }
  if (up.empty())
    throw Error(ErrorCode::kConnection,
                fmt::format("no host answers: {}", fmt::join(unreachable, "; ")));
  std::vector<std::string> cpus;
  for (const auto& h : up) cpus.push_back(h.cpu_xml);
  std::string baseline = hosts::baseline_cpu(up.front().conn, cpus, "", "x86_64", "", "");
  std::string model = hosts::Xml::parse(baseline).text("/cpu/model");

  // VMs whose CPU definition some host cannot provide.
  Json blocked = Json::array();
  std::vector<std::string> lines;
  for (const auto& h : up) {
    for (const auto& name : h.conn.domain_names()) {
      hosts::Domain d = h.conn.domain(name);
      hosts::DomainFacts f = hosts::parse_domain(hosts::domain_xml(d.get()));
      if (f.cpu_xml.empty()) continue;
      std::vector<std::string> cannot;
      for (const auto& other : up) {
        if (other.name == h.name) continue;
        std::string why;
        try {
          why =
              other.conn.cpu_incompatibility(f.cpu_xml, f.emulator, f.arch, f.machine, f.virt_type);
        } catch (const Error& e) {
          why = e.what();
        }
        if (!why.empty()) {
          cannot.push_back(fmt::format("{} ({})", other.name, why));
          blocked.push(Json::object()
                           .set("vm", Json::string(name))
                           .set("host", Json::string(h.name))
                           .set("cannot_move_to", Json::string(other.name))
                           .set("reason", Json::string(why)));
        }
      }
      if (!cannot.empty())
        lines.push_back(fmt::format("  {} on {} (CPU {} {}): cannot move to {}", name, h.name,
                                    f.cpu_mode, f.cpu_model, fmt::join(cannot, "; ")));
    }
  }
  if (json) {
    Json hosts_json = Json::array();
    for (const auto& h : up)
      hosts_json.push(
          Json::object().set("host", Json::string(h.name)).set("cpu", Json::string(h.model)));
    fmt::print("{}\n", Json::object()
                           .set("hosts", hosts_json)
                           .set("baseline_model", Json::string(model))
                           .set("baseline_xml", Json::string(baseline))
                           .set("blocked", blocked)
                           .dump());
    return 0;
  }
  for (const auto& h : up) fmt::print("{}: host CPU {}\n", h.name, h.model);
  for (const auto& u : unreachable) fmt::print("unreachable: {}\n", u);
  fmt::print("CPU model every host supports: {}\n", model.empty() ? "(none named)" : model);
  fmt::print("use it in a VM's definition so that it can move to any of these hosts:\n{}\n",
             baseline);
  if (lines.empty())
    fmt::print("every VM with a CPU definition can move to every other host\n");
  else
    fmt::print("VMs that cannot move to some host:\n{}\n", fmt::join(lines, "\n"));
  return 0;
}

namespace {

struct HostArgs {
  bool json = false;
  std::optional<std::string> vms_host;
};

}  // namespace

void register_host_commands(CLI::App& app, Registry& registry) {
  auto a = std::make_shared<HostArgs>();
  auto* hosts_cmd = app.add_subcommand(
      "hosts", "List the inventory's hosts: reachability, CPU, free memory, free space");
  hosts_cmd->add_flag("--json", a->json, "One JSON document instead of a table");
  registry.on(hosts_cmd, [a](Session& s) { return list_hosts(s.inventory(), a->json); });
  auto* baseline_cmd = hosts_cmd->add_subcommand(
      "baseline", "A CPU model every host supports, and VMs whose CPU cannot move to some host");
  baseline_cmd->add_flag("--json", a->json, "One JSON document");
  registry.on(baseline_cmd, [a](Session& s) { return hosts_baseline(s.inventory(), a->json); });

  auto* vms_cmd = app.add_subcommand("vms", "List VMs with their state and disks");
  vms_cmd->add_option("--host", a->vms_host, "Only this host");
  vms_cmd->add_flag("--json", a->json, "One JSON document instead of a table");
  registry.on(vms_cmd, [a](Session& s) { return list_vms(s.inventory(), a->vms_host, a->json); });
}

}  // namespace vmshift::cli
