// The copy engine: copies an image file from one endpoint to another in
// chunks, moving only the allocated extents (holes stay holes), with an
// xxHash checksum per chunk and a journal of finished chunks, so that an
// interrupted copy resumes where it stopped and a finished one can be
// verified end to end. A bandwidth limit applies to the data that travels.
//
//   source  [chunk 0][chunk 1][chunk 2]...   each: read data/holes -> hash -> write
//   journal {chunk_size, length, done: {index: hash}}   saved after every chunk
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/codec.h"
#include "base/deadline.h"
#include "base/json.h"
#include "transfer/endpoint.h"

namespace vmshift::transfer {

inline constexpr std::uint64_t kDefaultChunk = 64ull << 20;

// Which chunks of a copy are done, and their checksums.
struct Journal {
  std::uint64_t chunk_size = kDefaultChunk;
  std::uint64_t length = 0;                     // of the source file
  std::map<std::uint64_t, std::uint64_t> done;  // chunk index -> xxh3 of its bytes
  bool created = false;                         // the destination file was made

  std::uint64_t chunks() const;
  bool complete() const { return done.size() == chunks(); }
};

// A journal's done chunks as an object: {"<index>": "<hash as 16 hex digits>"}.
struct ChunkHashes {
  static Json encode(const std::map<std::uint64_t, std::uint64_t>& done);
  static void decode(const Json& j, std::map<std::uint64_t, std::uint64_t>& done,
                     const std::string& path);
};

// Tokens of bytes per second; waits (sleeps) to keep the average at the rate.
class RateLimiter {
 public:
  explicit RateLimiter(std::uint64_t bytes_per_second) : rate_(bytes_per_second) {}
  void consume(std::uint64_t bytes);
  std::uint64_t rate() const { return rate_; }

 private:
  std::uint64_t rate_;  // 0: unlimited
  std::optional<std::chrono::steady_clock::time_point> start_;
  std::uint64_t consumed_ = 0;
};

struct CopyOptions {
  std::uint64_t chunk_size = kDefaultChunk;
  std::uint64_t bandwidth = 0;  // bytes per second of data; 0 = unlimited
};

// What the engine tells its caller while it runs.
class CopyObserver {
 public:
  virtual ~CopyObserver() = default;
  virtual void progress(std::uint64_t done, std::uint64_t total) { (void)done, (void)total; }
  // A chunk is durable at the destination: the journal may be saved.
  virtual void chunk_done(const Journal& journal) { (void)journal; }
  virtual bool cancel_requested() { return false; }
  // The engine has just made the destination file (where there was none):
  // the caller may record it as its own.
  virtual void created() {}
};

struct CopyStats {
  std::uint64_t chunks_copied = 0;   // this run
  std::uint64_t chunks_skipped = 0;  // done by an earlier run (journal)
  std::uint64_t data_bytes = 0;      // bytes that travelled
  std::uint64_t hole_bytes = 0;      // bytes sent as holes
  std::chrono::milliseconds took{0};
};

// Copies src to dst, continuing from the journal (which it keeps up to
// date). Creates dst (an empty sparse file of the source's length) unless
// the journal says it was. Throws Error(kCancelled) on a cancel, with the
// journal saved, and Error(kBadData) if the journal belongs to a source of
// another length.
CopyStats copy(Endpoint& src, Endpoint& dst, Journal& journal, const CopyOptions& options,
               CopyObserver& observer);

struct VerifyResult {
  std::uint64_t chunks = 0;
  std::vector<std::uint64_t> mismatched;  // chunk indexes
  bool ok() const { return mismatched.empty(); }
};

// Reads both files chunk by chunk and compares their checksums (holes count
// as zeros, so a hole and written zeros are the same).
VerifyResult verify(Endpoint& src, Endpoint& dst, std::uint64_t chunk_size = kDefaultChunk,
                    CopyObserver* observer = nullptr);

// The checksum of one chunk of an endpoint.
std::uint64_t chunk_hash(Endpoint& e, std::uint64_t offset, std::uint64_t length);

}  // namespace vmshift::transfer

template <>
struct vmshift::codec::Fields<vmshift::transfer::Journal> {
  using T = transfer::Journal;
  static constexpr auto list =
      std::tuple{field("chunk_size", &T::chunk_size), field("length", &T::length),
                 field("created", &T::created), field("done", &T::done, transfer::ChunkHashes{})};
};
