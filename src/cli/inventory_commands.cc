#include "cli/inventory_commands.h"

#include <fmt/format.h>

#include "base/format.h"
#include "cli/table.h"
#include "guest/libvirt_guest.h"
#include "hosts/libvirt.h"
#include "hosts/libvirt_storage.h"
#include "hosts/xml.h"
#include "migrate/live_storage.h"
#include "qmp/json.h"

namespace vmshift::cli {

using qmp::Json;

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

}  // namespace vmshift::cli
