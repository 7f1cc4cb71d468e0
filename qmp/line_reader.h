// Splits a byte stream into QMP messages.
//
// QEMU writes each QMP message as one line of compact JSON ending in "\r\n"
// (JSON strings escape their newlines, so a raw '\n' only ends a message).
// The reader accepts bytes in pieces of any size: a message split over many
// reads, many messages in one read, and messages larger than any read buffer,
// up to a limit that protects against a peer that never sends a newline.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace vmshift::qmp {

class LineReader {
 public:
  static constexpr std::size_t kDefaultMaxLine = 64u << 20;  // 64 MiB

  explicit LineReader(std::size_t max_line_bytes = kDefaultMaxLine) : max_(max_line_bytes) {}

  // Appends bytes.
  void feed(std::string_view bytes);

  // The next complete line without its "\r\n" / "\n"; blank lines are
  // skipped. Throws Error(kProtocol) when the next line is over the limit,
  // complete or not (after every complete line before it was returned).
  std::optional<std::string> next();

  // Bytes of an unfinished line (non-zero when the stream ends mid-message).
  std::size_t pending_bytes() const { return buf_.size() - start_; }

 private:
  std::size_t max_;
  std::string buf_;
  std::size_t start_ = 0;  // first byte not yet returned
  std::size_t scan_ = 0;   // bytes before this offset hold no '\n'
  std::size_t open_ = 0;   // where the last (unterminated) line begins
};

}  // namespace vmshift::qmp
