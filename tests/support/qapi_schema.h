// Checks QMP command arguments against the schema a running QEMU reports
// (query-qmp-schema), so the typed helpers are proven against the QEMU that
// is installed, not against a copy of its documentation.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "qmp/json.h"

namespace vmshift::testing {

class QapiSchema {
 public:
  explicit QapiSchema(const qmp::Json& introspection);

  bool has_command(const std::string& name) const;
  // Every problem found: unknown or missing members, wrong JSON types,
  // values outside an enum. Empty when the arguments fit.
  std::vector<std::string> check_arguments(const std::string& command, const qmp::Json& args) const;

 private:
  void check(const std::string& type, const qmp::Json& value, const std::string& path,
             std::vector<std::string>& problems) const;
  bool fits(const std::string& type, const qmp::Json& value) const;
  std::map<std::string, qmp::Json> entities_;
};

}  // namespace vmshift::testing
