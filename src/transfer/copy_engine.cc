#include "transfer/copy_engine.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "base/error.h"

namespace vmshift::transfer {
namespace {

constexpr std::size_t kBuffer = 1 << 20;

// xxh3 over a chunk's bytes, holes as zeros.
// xxh3 of a run of zeros, streamed.
void hash_zeros(XXH3_state_t* state, std::uint64_t n) {
  static const std::vector<char> zero(kBuffer, 0);
  while (n > 0) {
    std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(n, zero.size()));
    XXH3_64bits_update(state, zero.data(), step);
    n -= step;
  }
}

class Hasher {
 public:
  Hasher() : state_(XXH3_createState()) {
    if (state_ == nullptr) throw std::bad_alloc();
    XXH3_64bits_reset(state_);
  }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  ~Hasher() { XXH3_freeState(state_); }
  void data(const char* p, std::size_t n) {
    flush();
    saw_data_ = true;
    XXH3_64bits_update(state_, p, n);
  }
  // Zeros are hashed when data follows them; a range of nothing but zeros
  // (a chunk that is one hole, the common case of a sparse disk) takes its
  // digest from a cache instead of hashing gigabytes of zeros.
  void zeros(std::uint64_t n) { pending_zeros_ += n; }
  std::uint64_t digest() {
    if (!saw_data_) return zeros_digest(pending_zeros_);
    flush();
    return XXH3_64bits_digest(state_);
  }

 private:
  void flush() {
    hash_zeros(state_, pending_zeros_);
    pending_zeros_ = 0;
  }
  static std::uint64_t zeros_digest(std::uint64_t n) {
    static std::mutex mu;
    static std::map<std::uint64_t, std::uint64_t> known;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (auto it = known.find(n); it != known.end()) return it->second;
    }
    XXH3_state_t* s = XXH3_createState();
    if (s == nullptr) throw std::bad_alloc();
    XXH3_64bits_reset(s);
    hash_zeros(s, n);
    std::uint64_t d = XXH3_64bits_digest(s);
    XXH3_freeState(s);
    std::lock_guard<std::mutex> lock(mu);
    known.emplace(n, d);
    return d;
  }
  XXH3_state_t* state_;
  std::uint64_t pending_zeros_ = 0;
  bool saw_data_ = false;
};

std::string hex(std::uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace

std::uint64_t Journal::chunks() const {
  if (chunk_size == 0) return 0;
  return (length + chunk_size - 1) / chunk_size;
}

Json ChunkHashes::encode(const std::map<std::uint64_t, std::uint64_t>& done) {
  Json d = Json::object();
  for (const auto& [index, hash] : done) d.set(std::to_string(index), Json::string(hex(hash)));
  return d;
}

void ChunkHashes::decode(const Json& j, std::map<std::uint64_t, std::uint64_t>& done,
                         const std::string& path) {
  codec::expect(j, Json::Type::kObject, path);
  done.clear();
  for (const auto& key : j.keys()) {
    std::string at = codec::key_path(path, key);
    std::uint64_t index = 0, hash = 0;
    if (auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), index);
        key.empty() || ec != std::errc() || end != key.data() + key.size())
      codec::fail(at, "expected a chunk index");
    Json v = j.get(key);
    codec::expect(v, Json::Type::kString, at);
    std::string s = v.as_string();
    if (auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), hash, 16);
        s.empty() || ec != std::errc() || end != s.data() + s.size())
      codec::fail(at, fmt::format("expected a hash in hex, got '{}'", s));
    done[index] = hash;
  }
}

void RateLimiter::consume(std::uint64_t bytes) {
  if (rate_ == 0) return;
  auto now = std::chrono::steady_clock::now();
  if (!start_) start_ = now;
  consumed_ += bytes;
  // When the average would exceed the rate, wait until it does not.
  auto due = *start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(static_cast<double>(consumed_) /
                                                         static_cast<double>(rate_)));
  if (due > now) std::this_thread::sleep_until(due);
}

std::uint64_t chunk_hash(Endpoint& e, std::uint64_t offset, std::uint64_t length) {
  Hasher h;
  std::vector<char> buf(kBuffer);
  std::unique_ptr<RangeReader> r = e.read(offset, length);
  std::uint64_t seen = 0;
  for (;;) {
    Piece p = r->next(buf);
    if (p.kind == Piece::kEnd) break;
    if (p.kind == Piece::kData)
      h.data(buf.data(), static_cast<std::size_t>(p.bytes));
    else
      h.zeros(p.bytes);
    seen += p.bytes;
  }
  r->finish();
  // A file shorter than the range reads as zeros to its end.
  if (seen < length) h.zeros(length - seen);
  return h.digest();
}

CopyStats copy(Endpoint& src, Endpoint& dst, Journal& journal, const CopyOptions& o,
               CopyObserver& obs) {
  auto start = std::chrono::steady_clock::now();
  CopyStats st;
  std::uint64_t length = src.length();
  if (journal.created && (journal.length != length || journal.chunk_size == 0))
    throw Error(ErrorCode::kBadData,
                fmt::format("the copy journal is for a source of {} bytes, but {} has {} now: the "
                            "source changed since the copy began",
                            journal.length, src.describe(), length));
  if (!journal.created) {
    // The journal claims the destination before it is made, so a copy
    // killed right after making it resumes into it; a copy killed before
    // makes it on resume (below). A failed create drops the claim: the
    // file there (if any) is not this copy's.
    journal.chunk_size = o.chunk_size > 0 ? o.chunk_size : kDefaultChunk;
    journal.length = length;
    journal.done.clear();
    journal.created = true;
    obs.chunk_done(journal);
    try {
      dst.create(length);
    } catch (const Error&) {
      journal.created = false;
      obs.chunk_done(journal);
      throw;
    }
    obs.created();
  } else if (!dst.exists()) {
    journal.done.clear();
    dst.create(length);
    obs.created();
  }
  RateLimiter limit(o.bandwidth);
  std::vector<char> buf(kBuffer);
  std::uint64_t n = journal.chunks();
  auto done_bytes = [&] {
    std::uint64_t b = 0;
    for (const auto& [index, hash] : journal.done) {
      (void)hash;
      b += std::min(journal.chunk_size, length - index * journal.chunk_size);
    }
    return b;
  };
  obs.progress(done_bytes(), length);
  for (std::uint64_t i = 0; i < n; ++i) {
    if (journal.done.count(i)) {
      ++st.chunks_skipped;
      continue;
    }
    if (obs.cancel_requested())
      throw Error(ErrorCode::kCancelled,
                  fmt::format("the copy of {} was cancelled after {} of {} chunks", src.describe(),
                              journal.done.size(), n));
    std::uint64_t off = i * journal.chunk_size;
    std::uint64_t len = std::min(journal.chunk_size, length - off);
    Hasher h;
    std::unique_ptr<RangeReader> in = src.read(off, len);
    std::unique_ptr<RangeWriter> out = dst.write(off, len);
    std::uint64_t moved = 0;
    // Holes are written when data follows them; one that ends the file
    // ends with a written zero byte, so the destination has the source's
    // length on every endpoint.
    std::uint64_t pending_hole = 0;
    for (;;) {
      Piece p = in->next(buf);
      if (p.kind == Piece::kEnd) break;
      if (p.kind == Piece::kData) {
        if (pending_hole > 0) out->hole(pending_hole);
        pending_hole = 0;
        limit.consume(p.bytes);
        out->data(std::span<const char>(buf.data(), static_cast<std::size_t>(p.bytes)));
        h.data(buf.data(), static_cast<std::size_t>(p.bytes));
        st.data_bytes += p.bytes;
      } else {
        pending_hole += p.bytes;
        h.zeros(p.bytes);
        st.hole_bytes += p.bytes;
      }
      moved += p.bytes;
    }
    in->finish();
    if (moved < len) {
      // The source ended early: the rest of the range is a hole.
      pending_hole += len - moved;
      h.zeros(len - moved);
      st.hole_bytes += len - moved;
    }
    if (pending_hole > 0) {
      if (off + len == length) {
        static const char zero = 0;
        if (pending_hole > 1) out->hole(pending_hole - 1);
        out->data(std::span<const char>(&zero, 1));
      } else {
        out->hole(pending_hole);
      }
    }
    out->finish();
    journal.done[i] = h.digest();
    ++st.chunks_copied;
    obs.chunk_done(journal);
    obs.progress(done_bytes(), length);
  }
  st.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  return st;
}

VerifyResult verify(Endpoint& src, Endpoint& dst, std::uint64_t chunk_size, CopyObserver* obs) {
  VerifyResult r;
  std::uint64_t a = src.length(), b = dst.length();
  std::uint64_t length = std::max(a, b);
  if (chunk_size == 0) chunk_size = kDefaultChunk;
  r.chunks = (length + chunk_size - 1) / chunk_size;
  for (std::uint64_t i = 0; i < r.chunks; ++i) {
    std::uint64_t off = i * chunk_size;
    std::uint64_t len = std::min(chunk_size, length - off);
    if (chunk_hash(src, off, len) != chunk_hash(dst, off, len)) r.mismatched.push_back(i);
    if (obs != nullptr) obs->progress(off + len, length);
  }
  // Different lengths differ even when the extra bytes are zeros.
  if (a != b && r.mismatched.empty()) r.mismatched.push_back(r.chunks - 1);
  return r;
}

}  // namespace vmshift::transfer
