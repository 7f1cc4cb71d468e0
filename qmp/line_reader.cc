#include "qmp/line_reader.h"

#include <fmt/format.h>

#include "base/error.h"

namespace vmshift::qmp {

void LineReader::feed(std::string_view bytes) {
  // Drop consumed bytes before growing, so the buffer holds at most one
  // partial line plus what the caller has not taken yet.
  if (start_ > 0 && (start_ == buf_.size() || start_ > buf_.size() / 2)) {
    buf_.erase(0, start_);
    scan_ -= start_;
    open_ = open_ > start_ ? open_ - start_ : 0;
    start_ = 0;
  }
  std::size_t old_size = buf_.size();
  buf_.append(bytes);
  // Only the new bytes are searched, so a huge message fed byte by byte
  // stays linear. The limit is checked by next(), after the complete lines
  // before the long one have been taken.
  std::size_t nl = bytes.rfind('\n');
  if (nl != std::string_view::npos) open_ = old_size + nl + 1;
}

std::optional<std::string> LineReader::next() {
  for (;;) {
    std::size_t nl = buf_.find('\n', std::max(scan_, start_));
    if (nl == std::string::npos) {
      scan_ = buf_.size();
      // An unfinished line over the limit will never fit (a '\r' waiting
      // for its '\n' does not count).
      std::size_t tail = buf_.size() - std::max(open_, start_);
      if (tail > 0 && buf_.back() == '\r') --tail;
      if (tail > max_)
        throw Error(ErrorCode::kProtocol,
                    fmt::format("QMP message is larger than {} bytes without a line end", max_));
      return std::nullopt;
    }
    std::size_t end = nl;
    if (end > start_ && buf_[end - 1] == '\r') --end;
    std::size_t len = end - start_;
    std::size_t begin = start_;
    start_ = nl + 1;
    scan_ = start_;
    if (len > max_)
      throw Error(
          ErrorCode::kProtocol,
          fmt::format("QMP message of {} bytes is larger than the limit of {} bytes", len, max_));
    if (len == 0) continue;
    return buf_.substr(begin, len);
  }
}

}  // namespace vmshift::qmp
