// Reading and editing libvirt's XML (domains, pools, capabilities) with
// libxml2 and XPath.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct _xmlDoc;

namespace vmshift::hosts {

class Xml {
 public:
  // Throws Error(kBadData) when the text is not well-formed XML.
  static Xml parse(std::string_view text);

  // string(expr): "" when nothing matches.
  std::string text(const std::string& xpath) const;
  // The value, or nullopt when the expression selects no node.
  std::optional<std::string> find(const std::string& xpath) const;
  // count(expr).
  int count(const std::string& xpath) const;
  // The string value of every node expr selects.
  std::vector<std::string> all(const std::string& xpath) const;

  // Sets an attribute on every element expr selects; returns how many.
  int set_attribute(const std::string& xpath, const std::string& name, const std::string& value);
  // Appends an element (XML text) to every element expr selects; returns how many.
  int append(const std::string& xpath, const std::string& element);
  // Removes every node expr selects; returns how many.
  int remove(const std::string& xpath);
  std::string to_string() const;
  // The first element expr selects, as XML text; "" when none.
  std::string element(const std::string& xpath) const;

 private:
  struct Free {
    void operator()(_xmlDoc* d) const;
  };
  std::shared_ptr<_xmlDoc> doc_;
};

// Escapes text for an XML attribute or element.
std::string xml_escape(std::string_view text);

}  // namespace vmshift::hosts
