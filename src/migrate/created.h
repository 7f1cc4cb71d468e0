// Which files a job made, so that its undo and cleanup delete those and
// nothing else. A file is the job's to delete only if the job created it
// (recorded after the call that made it succeeded, where nothing was
// before), and the file at that path still has the identity it had then
// (hosts::FileIdentity: device, inode, birth time; libvirt: weaker). A
// file that differs is left in place and the job says so.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/json.h"
#include "guest/guest.h"

namespace vmshift::migrate {

struct Created {
  std::string host;  // the host whose storage holds it
  std::string path;
  hosts::FileIdentity identity;
};

Json to_json(const hosts::FileIdentity& id);
hosts::FileIdentity identity_from_json(const Json& j);
Json to_json(const Created& c);
Created created_from_json(const Json& j);
Json to_json(const std::vector<Created>& all);
// Reads what to_json wrote; an absent or null field gives an empty list.
std::vector<Created> created_list_from_json(const std::optional<Json>& j);

// The record of a file the job just made at path. Throws Error(kNotFound)
// if there is no file there.
Created record_created(hosts::Storage& storage, const std::string& host, const std::string& path);

// Whether the list has a record of host:path.
bool has_created(const std::vector<Created>& all, const std::string& host, const std::string& path);

// Deletes a file the job created, if the file at its path is still that
// one. Returns a problem as a sentence, or nullopt when the file was
// removed (or was gone already).
std::optional<std::string> remove_created(hosts::Storage& storage, const Created& c);

// remove_created for every record of `host` in the list, problems appended
// to `problems`; the records of the files removed (or gone) leave the list.
void remove_all_created(hosts::Storage& storage, const std::string& host, std::vector<Created>& all,
                        std::vector<std::string>& problems);

}  // namespace vmshift::migrate
