#include "support/qapi_schema.h"

#include <fmt/format.h>

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "qmp/commands.h"

#ifndef VMSHIFT_SOURCE_ROOT
#error "VMSHIFT_SOURCE_ROOT must name the source tree"
#endif

namespace vmshift::qmp {
namespace {

std::vector<std::pair<std::string, Json>> typed_commands() {
  BlockdevMirrorArgs mirror{.job_id = "j",
                            .device = "d",
                            .target = "t",
                            .replaces = "r",
                            .sync = MirrorSync::kTop,
                            .speed = 1,
                            .granularity = 65536,
                            .buf_size = 1 << 20,
                            .on_source_error = OnError::kStop,
                            .on_target_error = OnError::kEnospc,
                            .filter_node_name = "f",
                            .copy_mode = MirrorCopyMode::kWriteBlocking,
                            .auto_finalize = true,
                            .auto_dismiss = false};
  DriveMirrorArgs drive{.job_id = "j",
                        .device = "d",
                        .target = "/t",
                        .format = "qcow2",
                        .node_name = "n",
                        .replaces = "r",
                        .sync = MirrorSync::kNone,
                        .mode = NewImageMode::kExisting,
                        .speed = 1,
                        .granularity = 65536,
                        .buf_size = 1 << 20,
                        .on_source_error = OnError::kIgnore,
                        .on_target_error = OnError::kAuto,
                        .unmap = true,
                        .copy_mode = MirrorCopyMode::kBackground,
                        .auto_finalize = false,
                        .auto_dismiss = true};
  BlockCommitArgs commit{.job_id = "j",
                         .device = "d",
                         .base_node = "b",
                         .base = "/b",
                         .top_node = "t",
                         .top = "/t",
                         .backing_file = "/bf",
                         .speed = 1,
                         .on_error = OnError::kReport,
                         .filter_node_name = "f",
                         .auto_finalize = true,
                         .auto_dismiss = true};
  MigrationParameters params{.max_bandwidth = 1,
                             .downtime_limit = 300,
                             .multifd_channels = 2,
                             .multifd_compression = MultifdCompression::kZstd,
                             .multifd_zstd_level = 1,
                             .xbzrle_cache_size = 1 << 20,
                             .max_postcopy_bandwidth = 1,
                             .cpu_throttle_initial = 20,
                             .cpu_throttle_increment = 10,
                             .cpu_throttle_tailslow = true,
                             .max_cpu_throttle = 99,
                             .tls_creds = "c",
                             .tls_hostname = "h"};
  Json caps = Json::array();
  for (auto c : {MigrationCapability::kXbzrle, MigrationCapability::kAutoConverge,
                 MigrationCapability::kZeroBlocks, MigrationCapability::kEvents,
                 MigrationCapability::kPostcopyRam, MigrationCapability::kReturnPath,
                 MigrationCapability::kPauseBeforeSwitchover, MigrationCapability::kMultifd,
                 MigrationCapability::kDirtyBitmaps, MigrationCapability::kLateBlockActivate,
                 MigrationCapability::kValidateUuid, MigrationCapability::kZeroCopySend})
    caps.push(Json::object()
                  .set("capability", Json::string(to_string(c)))
                  .set("state", Json::boolean(true)));
  return {
      {"blockdev-mirror", to_arguments(mirror)},
      {"drive-mirror", to_arguments(drive)},
      {"block-commit", to_arguments(commit)},
      {"blockdev-snapshot-sync",
       to_arguments(SnapshotSyncArgs{.node_name = "n",
                                     .snapshot_file = "/s",
                                     .snapshot_node_name = "s",
                                     .format = "qcow2",
                                     .mode = NewImageMode::kAbsolutePaths})},
      {"blockdev-snapshot-sync",
       to_arguments(SnapshotSyncArgs{.device = "d", .snapshot_file = "/s"})},
      {"migrate-set-parameters", to_arguments(params)},
      {"migrate-set-capabilities", Json::object().set("capabilities", caps)},
      {"blockdev-add", image_node({.node_name = "q",
                                   .filename = "/q",
                                   .read_only = true,
                                   .backing = Json::null(),
                                   .discard = "unmap",
                                   .cache_direct = true})},
      {"blockdev-add", image_node({.node_name = "r", .filename = "/r", .format = "raw"})},
  };
}

}  // namespace
}  // namespace vmshift::qmp

namespace vmshift::testing {

std::vector<std::pair<std::string, Json>> every_typed_command() { return qmp::typed_commands(); }

namespace {

// The recording that matches FakeQmpPeer::qemu72_greeting().
constexpr const char* kRecordedSchema = "/tests/data/qmp/qemu-7.2-qapi-schema.json";

}  // namespace

QapiSchema::QapiSchema(const Json& introspection) {
  Json list = introspection;
  if (introspection.is_object()) {
    qemu_ = introspection.get_string("qemu");
    list = introspection.get("schema");
  }
  for (const Json& e : list.items()) {
    Entity ent;
    ent.meta = e.get_string("meta-type");
    if (ent.meta == "builtin") {
      ent.json_type = e.get_string("json-type");
    } else if (ent.meta == "enum") {
      for (const Json& v : e.get("values").items()) ent.values.push_back(v.as_string());
    } else if (ent.meta == "array") {
      ent.element_type = e.get_string("element-type");
    } else if (ent.meta == "object") {
      for (const Json& m : e.get("members").items())
        ent.members.push_back({m.get_string("name"), m.get_string("type"), m.has("default")});
      ent.tag = e.find_string("tag").value_or("");
      if (auto variants = e.find("variants"))
        for (const Json& v : variants->items())
          ent.variants[v.get_string("case")] = v.get_string("type");
    } else if (ent.meta == "alternate") {
      for (const Json& m : e.get("members").items())
        ent.members.push_back({"", m.get_string("type")});
    } else if (ent.meta == "command" || ent.meta == "event") {
      ent.arg_type = e.get_string("arg-type");
    }
    entities_[e.get_string("name")] = std::move(ent);
  }
}

QapiSchema QapiSchema::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read the QAPI schema " + path);
  std::stringstream text;
  text << in.rdbuf();
  return QapiSchema(Json::parse(text.str()));
}

std::string QapiSchema::recorded_path() {
  return std::string(VMSHIFT_SOURCE_ROOT) + kRecordedSchema;
}

const QapiSchema& QapiSchema::recorded() {
  static const QapiSchema schema = from_file(recorded_path());
  return schema;
}

const QapiSchema::Entity& QapiSchema::entity(const std::string& name) const {
  auto it = entities_.find(name);
  if (it == entities_.end())
    throw std::runtime_error(fmt::format("the QAPI schema names type '{}' but lacks it", name));
  return it->second;
}

std::string QapiSchema::qemu_name() const {
  constexpr std::string_view kPrefix = "QEMU emulator version ";
  if (qemu_.rfind(kPrefix, 0) != 0) return "QEMU";
  std::string rest = qemu_.substr(kPrefix.size());
  return "QEMU " + rest.substr(0, rest.find(' '));
}

bool QapiSchema::has_command(const std::string& name) const {
  auto it = entities_.find(name);
  return it != entities_.end() && it->second.meta == "command";
}

std::vector<std::string> QapiSchema::check_arguments(const std::string& command,
                                                     const Json& args) const {
  if (!has_command(command)) return {fmt::format("QEMU has no command '{}'", command)};
  std::vector<std::string> problems;
  check(entity(command).arg_type, args.is_null() ? Json::object() : args, command, problems);
  return problems;
}

std::vector<std::string> QapiSchema::check_event(const std::string& event, const Json& data) const {
  auto it = entities_.find(event);
  if (it == entities_.end() || it->second.meta != "event")
    return {fmt::format("QEMU has no event '{}'", event)};
  std::vector<std::string> problems;
  check(it->second.arg_type, data.is_null() ? Json::object() : data, event, problems);
  return problems;
}

bool QapiSchema::takes_json_type_of(const std::string& type, const Json& value) const {
  const Entity& t = entity(type);
  if (t.meta == "builtin") {
    const std::string& j = t.json_type;
    return j == "value" || (j == "string" && value.is_string()) || (j == "int" && value.is_int()) ||
           (j == "number" && (value.is_int() || value.type() == Json::Type::kDouble)) ||
           (j == "boolean" && value.is_bool()) || (j == "null" && value.is_null()) ||
           (j == "object" && value.is_object());
  }
  if (t.meta == "enum") return value.is_string();
  if (t.meta == "array") return value.is_array();
  if (t.meta == "object") return value.is_object();
  return false;
}

// The members of an object, and those its union tag's value adds (variants
// may be unions themselves).
void QapiSchema::collect_members(const Entity& object, const Json& value,
                                 std::vector<const Member*>& out) const {
  for (const Member& m : object.members) out.push_back(&m);
  if (object.tag.empty()) return;
  auto tag_value = value.find(object.tag);
  if (!tag_value || !tag_value->is_string()) return;  // reported as the tag's own problem
  auto it = object.variants.find(tag_value->as_string());
  if (it != object.variants.end()) collect_members(entity(it->second), value, out);
}

void QapiSchema::check(const std::string& type, const Json& value, const std::string& path,
                       std::vector<std::string>& problems) const {
  const Entity& t = entity(type);
  auto wrong = [&](std::string_view want) {
    problems.push_back(fmt::format("{}: expected {}, got {}", path, want, value.dump()));
  };
  if (t.meta == "builtin") {
    if (!takes_json_type_of(type, value)) wrong(t.json_type);
  } else if (t.meta == "enum") {
    if (!value.is_string()) return wrong("an enum string");
    for (const std::string& v : t.values)
      if (v == value.as_string()) return;
    Json values = Json::array();
    for (const std::string& v : t.values) values.push(Json::string(v));
    problems.push_back(
        fmt::format("{}: '{}' is not one of {}", path, value.as_string(), values.dump()));
  } else if (t.meta == "array") {
    if (!value.is_array()) return wrong("an array");
    std::size_t i = 0;
    for (const Json& v : value.items())
      check(t.element_type, v, fmt::format("{}[{}]", path, i++), problems);
  } else if (t.meta == "alternate") {
    // QAPI gives each alternative its own JSON type: the value's type picks
    // the one to check, so a problem inside it is reported as such.
    for (const Member& m : t.members)
      if (takes_json_type_of(m.type, value)) return check(m.type, value, path, problems);
    wrong("one of the alternatives of " + type);
  } else if (t.meta == "object") {
    if (!value.is_object()) return wrong("an object");
    std::vector<const Member*> members;
    collect_members(t, value, members);
    std::set<std::string> known;
    for (const Member* m : members) {
      known.insert(m->name);
      std::string sub = path.empty() ? m->name : path + "." + m->name;
      if (auto v = value.find(m->name)) {
        check(m->type, *v, sub, problems);
      } else if (!m->optional) {
        problems.push_back(fmt::format("{}: required member missing", sub));
      }
    }
    for (const auto& key : value.keys())
      if (!known.count(key))
        problems.push_back(fmt::format("{}: QEMU does not know member '{}'", path, key));
  } else {
    problems.push_back(fmt::format("{}: cannot check meta-type {}", path, t.meta));
  }
}

}  // namespace vmshift::testing
