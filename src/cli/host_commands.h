// vmshift hosts, vmshift vms.
#pragma once

#include <optional>
#include <string>

#include "hosts/inventory.h"

namespace vmshift::cli {

int list_hosts(const hosts::Inventory& inventory, bool json);
int list_vms(const hosts::Inventory& inventory, const std::optional<std::string>& host, bool json);

}  // namespace vmshift::cli
