#include "hosts/xml.h"

#include <fmt/format.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "base/error.h"

namespace vmshift::hosts {
namespace {

struct XPathCtx {
  void operator()(xmlXPathContext* c) const { xmlXPathFreeContext(c); }
};
struct XPathObj {
  void operator()(xmlXPathObject* o) const { xmlXPathFreeObject(o); }
};

std::unique_ptr<xmlXPathObject, XPathObj> eval(_xmlDoc* doc, const std::string& xpath) {
  std::unique_ptr<xmlXPathContext, XPathCtx> ctx(xmlXPathNewContext(doc));
  if (!ctx) throw std::bad_alloc();
  std::unique_ptr<xmlXPathObject, XPathObj> obj(
      xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(xpath.c_str()), ctx.get()));
  if (!obj) throw Error(ErrorCode::kInternal, fmt::format("bad XPath expression '{}'", xpath));
  return obj;
}

std::string node_text(xmlNode* n) {
  xmlChar* c = xmlNodeGetContent(n);
  std::string s = c != nullptr ? reinterpret_cast<const char*>(c) : "";
  xmlFree(c);
  return s;
}

std::vector<xmlNode*> nodes(_xmlDoc* doc, const std::string& xpath) {
  auto obj = eval(doc, xpath);
  std::vector<xmlNode*> out;
  if (obj->type == XPATH_NODESET && obj->nodesetval != nullptr)
    for (int i = 0; i < obj->nodesetval->nodeNr; ++i) out.push_back(obj->nodesetval->nodeTab[i]);
  return out;
}

}  // namespace

void Xml::Free::operator()(_xmlDoc* d) const { xmlFreeDoc(d); }

Xml Xml::parse(std::string_view text) {
  xmlDoc* d = xmlReadMemory(text.data(), static_cast<int>(text.size()), "libvirt.xml", nullptr,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (d == nullptr) throw Error(ErrorCode::kBadData, "malformed XML from libvirt");
  Xml x;
  x.doc_ = std::shared_ptr<_xmlDoc>(d, Free());
  return x;
}

std::string Xml::text(const std::string& xpath) const {
  auto obj = eval(doc_.get(), "string(" + xpath + ")");
  return obj->stringval != nullptr ? reinterpret_cast<const char*>(obj->stringval) : "";
}

std::optional<std::string> Xml::find(const std::string& xpath) const {
  auto n = nodes(doc_.get(), xpath);
  if (n.empty()) return std::nullopt;
  return node_text(n.front());
}

int Xml::count(const std::string& xpath) const {
  auto obj = eval(doc_.get(), "count(" + xpath + ")");
  return static_cast<int>(obj->floatval);
}

std::vector<std::string> Xml::all(const std::string& xpath) const {
  std::vector<std::string> out;
  for (xmlNode* n : nodes(doc_.get(), xpath)) out.push_back(node_text(n));
  return out;
}

int Xml::set_attribute(const std::string& xpath, const std::string& name,
                       const std::string& value) {
  int n = 0;
  for (xmlNode* node : nodes(doc_.get(), xpath)) {
    if (node->type != XML_ELEMENT_NODE) continue;
    xmlSetProp(node, reinterpret_cast<const xmlChar*>(name.c_str()),
               reinterpret_cast<const xmlChar*>(value.c_str()));
    ++n;
  }
  return n;
}

int Xml::append(const std::string& xpath, const std::string& element) {
  Xml part = parse(element);
  int n = 0;
  for (xmlNode* node : nodes(doc_.get(), xpath)) {
    if (node->type != XML_ELEMENT_NODE) continue;
    xmlNode* copy = xmlDocCopyNode(xmlDocGetRootElement(part.doc_.get()), doc_.get(), 1);
    if (copy == nullptr) throw std::bad_alloc();
    xmlAddChild(node, copy);
    ++n;
  }
  return n;
}

int Xml::remove(const std::string& xpath) {
  int n = 0;
  for (xmlNode* node : nodes(doc_.get(), xpath)) {
    xmlUnlinkNode(node);
    xmlFreeNode(node);
    ++n;
  }
  return n;
}

std::string Xml::to_string() const {
  xmlChar* buf = nullptr;
  int size = 0;
  xmlDocDumpFormatMemory(doc_.get(), &buf, &size, 1);
  std::string s(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(size));
  xmlFree(buf);
  return s;
}

std::string Xml::element(const std::string& xpath) const {
  auto found = nodes(doc_.get(), xpath);
  if (found.empty()) return "";
  std::unique_ptr<xmlBuffer, decltype(&xmlBufferFree)> buf(xmlBufferCreate(), &xmlBufferFree);
  if (!buf) throw std::bad_alloc();
  xmlNodeDump(buf.get(), doc_.get(), found.front(), 0, 0);
  return std::string(reinterpret_cast<const char*>(xmlBufferContent(buf.get())),
                     static_cast<std::size_t>(xmlBufferLength(buf.get())));
}

std::string xml_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace vmshift::hosts
