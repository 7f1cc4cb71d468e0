#include "support/qapi_schema.h"

#include <fmt/format.h>

#include <set>
#include <stdexcept>

namespace vmshift::testing {

using qmp::Json;

QapiSchema::QapiSchema(const Json& introspection) {
  for (const Json& e : introspection.items()) entities_[e.get_string("name")] = e;
}

bool QapiSchema::has_command(const std::string& name) const {
  auto it = entities_.find(name);
  return it != entities_.end() && it->second.get_string("meta-type") == "command";
}

std::vector<std::string> QapiSchema::check_arguments(const std::string& command,
                                                     const Json& args) const {
  if (!has_command(command)) return {fmt::format("QEMU has no command '{}'", command)};
  std::vector<std::string> problems;
  check(entities_.at(command).get_string("arg-type"), args.is_null() ? Json::object() : args,
        command, problems);
  return problems;
}

bool QapiSchema::fits(const std::string& type, const Json& value) const {
  std::vector<std::string> problems;
  check(type, value, "", problems);
  return problems.empty();
}

void QapiSchema::check(const std::string& type, const Json& value, const std::string& path,
                       std::vector<std::string>& problems) const {
  const Json& t = entities_.at(type);
  std::string meta = t.get_string("meta-type");
  auto wrong = [&](std::string_view want) {
    problems.push_back(fmt::format("{}: expected {}, got {}", path, want, value.dump()));
  };
  if (meta == "builtin") {
    std::string json_type = t.get_string("json-type");
    bool ok = json_type == "value" || (json_type == "string" && value.is_string()) ||
              (json_type == "int" && value.is_int()) ||
              (json_type == "number" && (value.is_int() || value.type() == Json::Type::kDouble)) ||
              (json_type == "boolean" && value.is_bool()) ||
              (json_type == "null" && value.is_null()) ||
              (json_type == "object" && value.is_object());
    if (!ok) wrong(json_type);
  } else if (meta == "enum") {
    if (!value.is_string()) return wrong("an enum string");
    for (const Json& v : t.get("values").items())
      if (v.as_string() == value.as_string()) return;
    problems.push_back(
        fmt::format("{}: '{}' is not one of {}", path, value.as_string(), t.get("values").dump()));
  } else if (meta == "array") {
    if (!value.is_array()) return wrong("an array");
    std::size_t i = 0;
    for (const Json& v : value.items())
      check(t.get_string("element-type"), v, fmt::format("{}[{}]", path, i++), problems);
  } else if (meta == "alternate") {
    for (const Json& m : t.get("members").items())
      if (fits(m.get_string("type"), value)) return;
    wrong("one of the alternatives of " + type);
  } else if (meta == "object") {
    if (!value.is_object()) return wrong("an object");
    std::vector<Json> members = t.get("members").items();
    if (auto tag = t.find_string("tag")) {
      // A union: the tag's value selects the variant that adds members.
      if (auto tag_value = value.find_string(*tag)) {
        for (const Json& v : t.get("variants").items()) {
          if (v.get_string("case") == *tag_value) {
            for (const Json& m : entities_.at(v.get_string("type")).get("members").items())
              members.push_back(m);
          }
        }
      }
    }
    std::set<std::string> known;
    for (const Json& m : members) {
      std::string name = m.get_string("name");
      known.insert(name);
      std::string sub = path.empty() ? name : path + "." + name;
      if (auto v = value.find(name)) {
        check(m.get_string("type"), *v, sub, problems);
      } else if (!m.has("default")) {
        problems.push_back(fmt::format("{}: required member missing", sub));
      }
    }
    for (const auto& key : value.keys())
      if (!known.count(key))
        problems.push_back(fmt::format("{}: QEMU does not know member '{}'", path, key));
  } else {
    problems.push_back(fmt::format("{}: cannot check meta-type {}", path, meta));
  }
}

}  // namespace vmshift::testing
