// vmshift hosts, hosts baseline, vms.
#pragma once

#include <optional>
#include <string>

#include "hosts/inventory.h"

namespace vmshift::cli {

int list_hosts(const hosts::Inventory& inventory, bool json);
int list_vms(const hosts::Inventory& inventory, const std::optional<std::string>& host, bool json);
// A CPU model every host supports, and the VMs whose CPU cannot move to some host.
int hosts_baseline(const hosts::Inventory& inventory, bool json);

}  // namespace vmshift::cli
