// The transfer types vmshift runs as jobs. Kind is how code names a type;
// its name ("live-storage", "qsm", ...) is what the job store, the CLI and
// the JSON output show. The name table in kind.cc is the one place that
// spells the names.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace vmshift::migrate {

enum class Kind {
  kLiveStorage,  // live storage migration on one host (move-storage)
  kLive,         // live migration, storage shared
  kLiveVsm,      // live migration with the disks copied
  kQsm,          // quick storage migration: copy, save, move the rest, restore
  kQuick,        // quick migration: save and restore through shared storage
  kNetwork,      // a shut-off (or saved) VM's files copied to another place
  kCopy,         // one image file copied between hosts
};

// Every kind, in the order above.
const std::vector<Kind>& all_kinds();

// "live-storage", "live", "live-vsm", "qsm", "quick", "network", "copy".
std::string_view kind_name(Kind kind);

// The kind with that name, or nullopt.
std::optional<Kind> find_kind(std::string_view name);

// The kind with that name; throws Error(kInvalidArgument) naming the known
// ones otherwise.
Kind parse_kind(std::string_view name);

}  // namespace vmshift::migrate
