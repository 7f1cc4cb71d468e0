// Readable one-line forms of QMP commands and events for the debug log, as
// libvirt's qemu_monitor.c writes them (VIR_DEBUG with units): members as
// key=value, nested objects with dotted keys, and the unit of every member
// QEMU's schema documents as a size, a speed or a time, e.g.
//
//   blockdev-mirror job-id=mirror0 device=src0 target=dst0 sync=full
//       speed=16777216 B/s (16 MiB/s)
//
// The raw JSON lines are logged too; these say what they mean.
#pragma once

#include <string>
#include <string_view>

#include "base/json.h"
#include "qmp/message.h"

namespace vmshift::qmp {

// "B", "B/s", "ms" or "%" for a member QEMU measures in that unit, else "".
std::string_view unit_of(std::string_view member);

// The members of an object (arguments, event data) as "k=v k=v ...".
// Null or an empty object gives "". At most max_bytes long.
std::string describe_members(const Json& members, std::size_t max_bytes = 2000);

// "NAME k=v ..." for an event.
std::string describe_event(const Event& event);

}  // namespace vmshift::qmp
