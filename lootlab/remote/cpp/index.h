// The lootlab index file (docs/FORMAT.md, version 2), mapped read-only, and its queries.
//
// A C++ twin of lootlab/fileformat.py + snapshot.py + index.py + the query_cells kernel
// of lootlab/_kernels.c: the same checks at open (the header and every offset against
// the real file size, the cell table), and queries whose rows and ORDER equal
// LootIndex's.  A query answers record numbers into the mapping; the encoder reads the
// records from there, so an answer is copied once, into the wire bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace lootlab {

constexpr int64_t kBias = int64_t{1} << 25;      // x, z in [-2^25, 2^25 - 1]
constexpr int64_t kYMin = -2048, kYMax = 2047;

// A file that is not a usable index: names the file and what is wrong with it.
class InvalidIndex : public std::runtime_error {
 public:
  InvalidIndex(const std::string& path, const std::string& problem)
      : std::runtime_error(path + ": " + problem) {}
};

// A query argument LootIndex refuses (QueryError there): INVALID_ARGUMENT on the wire.
class QueryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Header {
  uint64_t count = 0, generation = 0, build_ns = 0, cell_count = 0, hash_slots = 0;
  uint64_t lineage = 0, file_size = 0, cells_offset = 0, hash_offset = 0;
  uint32_t body_crc = 0, max_probe = 0;
  int cell_shift = 0;
  int32_t bmin[3] = {0, 0, 0}, bmax[3] = {-1, -1, -1};
};

struct FileIdent {           // (device, inode, size, mtime_ns): what LootIndex compares
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileIdent& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
  }
};

// One mapped generation.  Immutable once open; shared by the queries that use it and
// unmapped when the last of them lets go.
class Snapshot {
 public:
  static std::shared_ptr<const Snapshot> open(const std::string& path);
  ~Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  const Header& header() const { return h_; }
  uint64_t size() const { return h_.count; }
  const FileIdent& ident() const { return ident_; }
  // Record i's 24 bytes (i < size()).
  const unsigned char* record(uint64_t i) const { return records_ + 24 * i; }

  // Each query appends record numbers to `out` in LootIndex's order.  Arguments are
  // checked as lootlab.queryargs does (QueryError with its message).
  bool get(int64_t x, int64_t y, int64_t z, uint32_t* found) const;
  void near(int64_t x, int64_t y, int64_t z, double r, std::vector<uint32_t>& out) const;
  void box(const int64_t lo[3], const int64_t hi[3], std::vector<uint32_t>& out) const;
  void knn(int64_t x, int64_t y, int64_t z, uint64_t k, std::vector<uint32_t>& out) const;

 private:
  Snapshot() = default;
  struct Query;
  void select_cells(int64_t x0, int64_t x1, int64_t z0, int64_t z1, const Query& q,
                    std::vector<uint32_t>& out) const;

  Header h_;
  FileIdent ident_;
  const unsigned char* base_ = nullptr;   // the mapping
  size_t mapped_ = 0;
  const unsigned char* records_ = nullptr;
  const uint64_t* words_ = nullptr;        // 3 words a record
  const uint64_t* codes_ = nullptr;
  const int64_t* starts_ = nullptr;
  const uint32_t* table_ = nullptr;
};

// The index at a path: the current snapshot, and LootIndex's swap rule (look for a newly
// published file at most every `refresh_ms`; keep serving the last good generation when
// the new file is invalid, or older within the same lineage).
class Index {
 public:
  Index(std::string path, int refresh_ms);
  std::shared_ptr<const Snapshot> current();
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<const Snapshot> refresh();

  std::string path_;
  int64_t refresh_ns_;
  std::mutex mu_;
  std::shared_ptr<const Snapshot> snap_;
  int64_t next_check_ns_ = 0;
  FileIdent rejected_;
  bool has_rejected_ = false;
};

// The position message of lootlab.queryargs.check_point.
std::string position_problem(int64_t x, int64_t y, int64_t z);
bool in_range(int64_t x, int64_t y, int64_t z);

}  // namespace lootlab
