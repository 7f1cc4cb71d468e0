// The inventory: which hosts vmshift knows, how to reach their libvirt, and
// their storage locations (local to one host, or shared by several).
// A TOML file, documented in docs/config.md.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmshift::hosts {

struct HostConfig {
  std::string name;
  std::string uri;                               // libvirt URI from where vmshift runs
  std::optional<std::string> peer_uri;           // how other hosts' libvirtd reach this one
  std::optional<std::string> migration_address;  // address for migration data
  int max_storage_migrations = 2;
  int max_live_migrations = 2;
  // The rate of the host's migration link in bytes per second, written as
  // "10gbit", "1gbit", "200mbit" (for predictions); nullopt: measured.
  std::optional<double> link_rate;
};

// "10gbit", "1gbit", "200mbit", "500kbit" (bits per second, decimal, as tc
// writes them) in bytes per second; nullopt if it is not one.
std::optional<double> parse_link_rate(std::string_view text);

struct StorageConfig {
  std::string name;
  std::string path;                 // directory, the same on every host listed
  std::optional<std::string> pool;  // libvirt pool covering path, if any
  std::vector<std::string> hosts;   // hosts that see it
  bool shared = false;              // the same storage seen by all of `hosts`
};

class Inventory {
 public:
  // The first of: explicit path, $VMSHIFT_CONFIG, $XDG_CONFIG_HOME (or
  // ~/.config)/vmshift/config.toml, /etc/vmshift/config.toml. Without any,
  // the built-in inventory: this machine's libvirt (qemu:///system).
  // An explicit path or $VMSHIFT_CONFIG that does not exist is an error.
  static Inventory load(const std::optional<std::string>& explicit_path = std::nullopt);
  // Parses and checks a TOML text; `source` names it in messages.
  static Inventory parse(std::string_view text, const std::string& source);
  static Inventory local_default();

  const std::string& source() const { return source_; }
  const std::vector<HostConfig>& hosts() const { return hosts_; }
  const std::vector<StorageConfig>& storage() const { return storage_; }

  // Throws Error(kNotFound) naming the known hosts.
  const HostConfig& host(std::string_view name) const;
  // The storage locations a host sees.
  std::vector<StorageConfig> storage_of(std::string_view host) const;
  // The location of host that contains path (longest matching directory).
  std::optional<StorageConfig> storage_for(std::string_view host, std::string_view path) const;

 private:
  std::string source_;
  std::vector<HostConfig> hosts_;
  std::vector<StorageConfig> storage_;
};

}  // namespace vmshift::hosts
