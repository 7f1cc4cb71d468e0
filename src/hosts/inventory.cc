#include "hosts/inventory.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/error.h"

namespace vmshift::hosts {
namespace {

[[noreturn]] void bad(const std::string& source, const toml::source_region& where,
                      const std::string& what) {
  if (where.begin.line > 0)
    throw Error(ErrorCode::kBadData,
                fmt::format("{}:{}:{}: {}", source, where.begin.line, where.begin.column, what));
  throw Error(ErrorCode::kBadData, fmt::format("{}: {}", source, what));
}

std::string need_string(const toml::table& t, const char* key, const std::string& source,
                        const std::string& ctx) {
  const toml::node* n = t.get(key);
  if (n == nullptr) bad(source, t.source(), fmt::format("{} needs a '{}'", ctx, key));
  auto v = n->value<std::string>();
  if (!v || v->empty())
    bad(source, n->source(), fmt::format("'{}' of {} must be a non-empty string", key, ctx));
  return *v;
}

std::optional<std::string> opt_string(const toml::table& t, const char* key,
                                      const std::string& source, const std::string& ctx) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  auto v = n->value<std::string>();
  if (!v) bad(source, n->source(), fmt::format("'{}' of {} must be a string", key, ctx));
  return *v;
}

int opt_limit(const toml::table& t, const char* key, int fallback, const std::string& source,
              const std::string& ctx) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return fallback;
  // value_exact: no conversion from booleans or floats.
  auto v = n->value_exact<int64_t>();
  if (!v || *v < 1 || *v > 64)
    bad(source, n->source(),
        fmt::format("'{}' of {} must be a whole number from 1 to 64", key, ctx));
  return static_cast<int>(*v);
}

void check_keys(const toml::table& t, std::initializer_list<std::string_view> known,
                const std::string& source, const std::string& ctx) {
  for (const auto& [k, v] : t) {
    bool ok = false;
    for (auto kn : known) ok = ok || k.str() == kn;
    if (!ok) bad(source, v.source(), fmt::format("{} has an unknown key '{}'", ctx, k.str()));
  }
}

std::string normal_dir(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

std::optional<double> parse_link_rate(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() &&
         ((text[digits] >= '0' && text[digits] <= '9') || text[digits] == '.'))
    ++digits;
  if (digits == 0) return std::nullopt;
  double value = std::strtod(std::string(text.substr(0, digits)).c_str(), nullptr);
  std::string_view unit = text.substr(digits);
  double bits;
  if (unit == "kbit")
    bits = value * 1e3;
  else if (unit == "mbit")
    bits = value * 1e6;
  else if (unit == "gbit")
    bits = value * 1e9;
  else if (unit == "tbit")
    bits = value * 1e12;
  else
    return std::nullopt;
  if (bits <= 0) return std::nullopt;
  return bits / 8;
}

Inventory Inventory::local_default() {
  Inventory inv;
  inv.source_ = "(built-in: this machine only)";
  HostConfig h;
  h.name = "localhost";
  h.uri = "qemu:///system";
  inv.hosts_.push_back(h);
  return inv;
}

Inventory Inventory::parse(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    bad(source, e.source(), std::string(e.description()));
  }
  check_keys(root, {"host", "storage"}, source, "the inventory");
  Inventory inv;
  inv.source_ = source;
  std::set<std::string> names;
  if (const toml::array* hosts = root["host"].as_array()) {
    for (const toml::node& node : *hosts) {
      const toml::table* t = node.as_table();
      if (t == nullptr) bad(source, node.source(), "each [[host]] must be a table");
      std::string ctx = "a [[host]]";
      HostConfig h;
      h.name = need_string(*t, "name", source, ctx);
      ctx = fmt::format("host '{}'", h.name);
      check_keys(*t,
                 {"name", "uri", "peer_uri", "migration_address", "max_storage_migrations",
                  "max_live_migrations", "link_rate"},
                 source, ctx);
      h.uri = need_string(*t, "uri", source, ctx);
      h.peer_uri = opt_string(*t, "peer_uri", source, ctx);
      h.migration_address = opt_string(*t, "migration_address", source, ctx);
      h.max_storage_migrations = opt_limit(*t, "max_storage_migrations", 2, source, ctx);
      h.max_live_migrations = opt_limit(*t, "max_live_migrations", 2, source, ctx);
      if (auto rate = opt_string(*t, "link_rate", source, ctx)) {
        h.link_rate = parse_link_rate(*rate);
        if (!h.link_rate)
          bad(source, t->get("link_rate")->source(),
              fmt::format("'link_rate' of {} must be a rate such as \"1gbit\" or \"200mbit\"",
                          ctx));
      }
      if (!names.insert(h.name).second)
        bad(source, t->source(), fmt::format("host '{}' is listed twice", h.name));
      inv.hosts_.push_back(std::move(h));
    }
  } else if (root.contains("host")) {
    bad(source, root["host"].node()->source(), "hosts are written as [[host]] tables");
  }
  if (inv.hosts_.empty()) throw Error(ErrorCode::kBadData, fmt::format("{}: no [[host]]", source));

  std::set<std::string> storage_names;
  if (root.contains("storage") && !root["storage"].is_array_of_tables())
    bad(source, root["storage"].node()->source(),
        "storage locations are written as [[storage]] tables");
  if (const toml::array* storage = root["storage"].as_array()) {
    for (const toml::node& node : *storage) {
      const toml::table* t = node.as_table();
      if (t == nullptr) bad(source, node.source(), "each [[storage]] must be a table");
      StorageConfig s;
      s.name = need_string(*t, "name", source, "a [[storage]]");
      std::string ctx = fmt::format("storage '{}'", s.name);
      check_keys(*t, {"name", "path", "pool", "hosts", "shared"}, source, ctx);
      s.path = normal_dir(need_string(*t, "path", source, ctx));
      if (s.path.front() != '/')
        bad(source, t->get("path")->source(), fmt::format("'path' of {} must be absolute", ctx));
      s.pool = opt_string(*t, "pool", source, ctx);
      if (const toml::node* sh = t->get("shared")) {
        auto v = sh->value_exact<bool>();
        if (!v) bad(source, sh->source(), fmt::format("'shared' of {} must be true or false", ctx));
        s.shared = *v;
      }
      const toml::array* hosts = (*t)["hosts"].as_array();
      if (hosts == nullptr || hosts->empty())
        bad(source, t->source(), fmt::format("{} needs 'hosts', a list of host names", ctx));
      for (const toml::node& h : *hosts) {
        auto name = h.value<std::string>();
        if (!name) bad(source, h.source(), fmt::format("'hosts' of {} must list host names", ctx));
        if (!names.count(*name))
          bad(source, h.source(),
              fmt::format("{} names host '{}' that is not in the inventory", ctx, *name));
        s.hosts.push_back(*name);
      }
      if (!s.shared && s.hosts.size() > 1)
        bad(source, t->source(),
            fmt::format("{} is local (shared = false) but lists {} hosts", ctx, s.hosts.size()));
      if (!storage_names.insert(s.name).second)
        bad(source, t->source(), fmt::format("storage '{}' is listed twice", s.name));
      inv.storage_.push_back(std::move(s));
    }
  }
  return inv;
}

Inventory Inventory::load(const std::optional<std::string>& explicit_path) {
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(ErrorCode::kNotFound, fmt::format("cannot read inventory '{}'", path));
    std::stringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path);
  };
  if (explicit_path) return read(*explicit_path);
  if (const char* env = std::getenv("VMSHIFT_CONFIG"); env != nullptr && *env != '\0') {
    if (!std::filesystem::exists(env))
      throw Error(ErrorCode::kNotFound,
                  fmt::format("$VMSHIFT_CONFIG names '{}', which does not exist", env));
    return read(env);
  }
  std::vector<std::string> candidates;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0')
    candidates.push_back(std::string(xdg) + "/vmshift/config.toml");
  else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    candidates.push_back(std::string(home) + "/.config/vmshift/config.toml");
  candidates.push_back("/etc/vmshift/config.toml");
  for (const auto& c : candidates)
    if (std::filesystem::exists(c)) return read(c);
  return local_default();
}

const HostConfig& Inventory::host(std::string_view name) const {
  for (const auto& h : hosts_)
    if (h.name == name) return h;
  std::string known;
  for (const auto& h : hosts_) known += (known.empty() ? "" : ", ") + h.name;
  throw Error(ErrorCode::kNotFound,
              fmt::format("no host '{}' in the inventory {} (hosts: {})", name, source_, known));
}

std::vector<StorageConfig> Inventory::storage_of(std::string_view host) const {
  std::vector<StorageConfig> out;
  for (const auto& s : storage_)
    for (const auto& h : s.hosts)
      if (h == host) out.push_back(s);
  return out;
}

std::optional<StorageConfig> Inventory::storage_for(std::string_view host,
                                                    std::string_view path) const {
  std::optional<StorageConfig> best;
  for (const auto& s : storage_of(host)) {
    bool inside = path == s.path || (path.size() > s.path.size() && path.starts_with(s.path) &&
                                     (s.path == "/" || path[s.path.size()] == '/'));
    if (inside && (!best || s.path.size() > best->path.size())) best = s;
  }
  return best;
}

}  // namespace vmshift::hosts
