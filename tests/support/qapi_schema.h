// Checks QMP command arguments against QEMU's QAPI schema (the answer to
// query-qmp-schema), so that a command built by libqmp or scripted for the
// fake peer is one the real QEMU would accept, as libvirt's test monitor
// does (qemuMonitorTestProcessCommandDefaultValidate).
//
// The schema is either asked from a running QEMU or read from a recording
// in tests/data/qmp (scripts/dev/record-qapi-schema). It is copied into
// plain structures when constructed: a QapiSchema is immutable and may be
// used from several threads at once (a Json may not).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/json.h"

namespace vmshift::testing {

class QapiSchema {
 public:
  // introspection: the array query-qmp-schema returns, or a recording
  // {"qemu": VERSION, "schema": [...]} as the record script writes it.
  explicit QapiSchema(const Json& introspection);
  static QapiSchema from_file(const std::string& path);
  // The schema recorded from the QEMU that tests/data/qmp names (that of
  // the fake peer's greeting), read once.
  static const QapiSchema& recorded();
  static std::string recorded_path();

  // The QEMU version line of a recording ("" for a live schema).
  const std::string& qemu() const { return qemu_; }
  // "QEMU 7.2.22" for a recording, "QEMU" for a live schema: for messages.
  std::string qemu_name() const;
  bool has_command(const std::string& name) const;
  // Every problem found, each naming the command and the member: unknown
  // command, unknown or missing members, wrong JSON types, values outside
  // an enum. Empty when the arguments fit. Null arguments mean none.
  std::vector<std::string> check_arguments(const std::string& command, const Json& args) const;
  // The same for an event QEMU would send: its name and its data.
  std::vector<std::string> check_event(const std::string& event, const Json& data) const;

 private:
  struct Member {
    std::string name;
    std::string type;
    bool optional = false;
  };
  struct Entity {
    std::string meta;                 // builtin, enum, array, object, alternate, command, event
    std::string json_type;            // builtin
    std::vector<std::string> values;  // enum
    std::string element_type;         // array
    std::vector<Member> members;      // object; alternate (types only)
    std::string tag;                  // object union
    std::map<std::string, std::string> variants;  // object union: tag value -> type
    std::string arg_type;                         // command
  };

  const Entity& entity(const std::string& name) const;
  void collect_members(const Entity& object, const Json& value,
                       std::vector<const Member*>& out) const;
  void check(const std::string& type, const Json& value, const std::string& path,
             std::vector<std::string>& problems) const;
  bool takes_json_type_of(const std::string& type, const Json& value) const;

  std::string qemu_;
  std::map<std::string, Entity> entities_;
};

// The arguments of every libqmp builder with every member set (and the
// variants that exclude each other), by command: what the schema checks of
// the unit and integration suites run through.
std::vector<std::pair<std::string, Json>> every_typed_command();

}  // namespace vmshift::testing
