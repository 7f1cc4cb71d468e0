// libFuzzer target for everything libqmp does with bytes from a QMP peer:
// line framing (in pieces of fuzzer-chosen sizes), JSON parsing and message
// classification. Any crash, sanitizer report, hang or unbounded growth is
// a bug; thrown vmshift::Error is the expected way to refuse bad input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "base/json.h"
#include "qmp/line_reader.h"
#include "qmp/message.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vmshift;
  if (size == 0) return 0;
  // The first byte chooses the piece size, so reads split messages anywhere.
  std::size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  qmp::LineReader reader(4096);
  try {
    for (std::size_t off = 0; off < input.size(); off += piece) {
      reader.feed(input.substr(off, piece));
      while (auto line = reader.next()) {
        try {
          qmp::Message m = qmp::parse_message(*line);
          if (m.kind == qmp::Message::Kind::kReply) {
            // What a waiting caller reads from a reply.
            if (auto err = m.body.find("error"); err && err->is_object()) {
              (void)err->find_string("class");
              (void)err->find_string("desc");
            }
          }
          // A parsed value must serialize and parse back to an equal value.
          if (m.kind == qmp::Message::Kind::kReply) {
            Json again = Json::parse(m.body.dump());
            if (!(again == m.body)) __builtin_trap();
          }
        } catch (const Error&) {
        }
      }
    }
  } catch (const Error&) {
    // Over-long line: refused.
  }
  return 0;
}
