// Opening an index file: every check docs/FORMAT.md asks of a reader, in the order and
// words of lootlab/fileformat.py, before any offset read from the file is used.  Then
// LootIndex's generation swaps (lootlab/index.py: refresh).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "index.h"

namespace lootlab {
namespace {

constexpr uint64_t kHeaderSize = 320, kRecordSize = 24, kHashEmpty = 0xFFFFFFFFu;
constexpr uint32_t kByteOrderTag = 0x01020304u;
constexpr unsigned char kMagic[8] = {'L', 'O', 'O', 'T', 'I', 'D', 'X', 0};

template <typename T>
T load(const unsigned char* p) {       // little-endian field (this build is x86-64 / LE)
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint32_t crc32(const unsigned char* p, size_t n) {   // zlib's CRC-32
  static uint32_t table[256];
  static const bool ready = [] {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)ready;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint64_t align64(unsigned __int128 n) { return (uint64_t)((n + 63) / 64 * 64); }

std::string bytes_repr(const unsigned char* p, size_t n) {   // Python's repr of bytes
  std::string out = "b'";
  char buf[8];
  for (size_t i = 0; i < n; i++) {
    unsigned char c = p[i];
    if (c == '\\' || c == '\'') { out += '\\'; out += (char)c; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 32 || c >= 127) { std::snprintf(buf, sizeof buf, "\\x%02x", c); out += buf; }
    else out += (char)c;
  }
  return out + "'";
}

std::string triple(const int32_t v[3]) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", " +
         std::to_string(v[2]) + ")";
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

void require_regular(mode_t mode, const std::string& path) {
  if (!S_ISREG(mode)) throw InvalidIndex(path, std::string("is ") + kind_of(mode) +
                                                   ", not an index file");
}

[[noreturn]] void open_failed(const std::string& path, int err) {
  if (err == ENOENT) throw InvalidIndex(path, "no such file (build one with `lootlab build`)");
  if (err == EACCES || err == EPERM) throw InvalidIndex(path, "permission denied");
  throw InvalidIndex(path, std::string("cannot open: ") + std::strerror(err));
}

std::string too_small(uint64_t size) {
  return "too small to be a lootlab index (" + std::to_string(size) +
         " bytes; the header alone is 320)";
}

// fileformat.parse_header: decode and range-check every field a query uses.
Header parse_header(const unsigned char* head, size_t have, uint64_t file_size,
                    const std::string& path) {
  if (file_size < 16 || have < 16) throw InvalidIndex(path, too_small(file_size));
  if (std::memcmp(head, kMagic, 8) != 0)
    throw InvalidIndex(path, "not a lootlab index (magic " + bytes_repr(head, 8) +
                                 ", expected " + bytes_repr(kMagic, 8) + ")");
  uint32_t order = load<uint32_t>(head + 12);
  if (order != kByteOrderTag) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%#010x", order);
    throw InvalidIndex(path, std::string("byte-order tag ") + buf +
                                 ": written for another byte order");
  }
  uint16_t version = load<uint16_t>(head + 8);
  if (version != 2)
    throw InvalidIndex(path, "format version " + std::to_string(version) +
                                 "; this lootlab reads version 2 (rebuild the index with "
                                 "`lootlab build`)");
  if (file_size < kHeaderSize || have < kHeaderSize) throw InvalidIndex(path, too_small(file_size));
  unsigned char check[kHeaderSize];
  std::memcpy(check, head, kHeaderSize);
  std::memset(check + 20, 0, 4);
  if (crc32(check, kHeaderSize) != load<uint32_t>(head + 20))
    throw InvalidIndex(path, "header checksum mismatch: the header is corrupt");
  uint16_t header_size = load<uint16_t>(head + 10), record_size = load<uint16_t>(head + 16);
  if (header_size != kHeaderSize || record_size != kRecordSize)
    throw InvalidIndex(path, "header size " + std::to_string(header_size) + " / record size " +
                                 std::to_string(record_size) + "; expected 320 / 24");
  Header h;
  h.cell_shift = head[18];
  h.count = load<uint64_t>(head + 24);
  h.generation = load<uint64_t>(head + 32);
  h.build_ns = load<uint64_t>(head + 40);
  h.body_crc = load<uint32_t>(head + 48);
  h.max_probe = load<uint32_t>(head + 52);
  for (int a = 0; a < 3; a++) {
    h.bmin[a] = load<int32_t>(head + 56 + 4 * a);
    h.bmax[a] = load<int32_t>(head + 68 + 4 * a);
  }
  h.cell_count = load<uint64_t>(head + 96);
  h.hash_slots = load<uint64_t>(head + 112);
  h.lineage = load<uint64_t>(head + 256);
  const uint64_t n = h.count, c = h.cell_count, s = h.hash_slots;
  const std::string N = std::to_string(n);
  if (h.cell_shift > 26)
    throw InvalidIndex(path, "cell shift " + std::to_string(h.cell_shift) + " is outside [0, 26]");
  if (n >= kHashEmpty) throw InvalidIndex(path, "record count " + N + " is above 4294967294");
  if (s < 8 || (s & (s - 1)) || s < n)
    throw InvalidIndex(path, "hash table of " + std::to_string(s) + " slots cannot hold " + N +
                                 " records");
  if (c > n || (n > 0) != (c > 0))
    throw InvalidIndex(path, std::to_string(c) + " cells for " + N + " records");
  if (n ? (h.max_probe < 1 || h.max_probe > n) : h.max_probe != 0)
    throw InvalidIndex(path, "max probe length " + std::to_string(h.max_probe) +
                                 " is outside [" + (n ? "1" : "0") + ", " + N + "] for " + N +
                                 " records");
  if (!n) {
    const int32_t lo[3] = {0, 0, 0}, hi[3] = {-1, -1, -1};
    if (std::memcmp(h.bmin, lo, sizeof lo) || std::memcmp(h.bmax, hi, sizeof hi))
      throw InvalidIndex(path, "bounding box " + triple(h.bmin) + ".." + triple(h.bmax) +
                                   " of an empty index is not the empty form (0, 0, 0)..(-1, -1, -1)");
  } else {
    const int64_t low[3] = {-kBias, kYMin, -kBias}, high[3] = {kBias - 1, kYMax, kBias - 1};
    for (int a = 0; a < 3; a++)
      if (!(low[a] <= h.bmin[a] && h.bmin[a] <= h.bmax[a] && h.bmax[a] <= high[a]))
        throw InvalidIndex(path, std::string("bounding box ") + "xyz"[a] + " " +
                                     std::to_string(h.bmin[a]) + ".." + std::to_string(h.bmax[a]) +
                                     " is not a range within [" + std::to_string(low[a]) + ", " +
                                     std::to_string(high[a]) + "]");
  }
  uint16_t src_len = load<uint16_t>(head + 128);
  if (src_len > 126)
    throw InvalidIndex(path, "source-version length " + std::to_string(src_len) +
                                 " is above 126");
  if (h.lineage == 0)
    throw InvalidIndex(path, "lineage id is 0 (unset): not written by a lootlab publisher");
  // The layout is a pure function of N, C, S (128-bit: S may be anything up to 2^64).
  uint64_t cells = align64((unsigned __int128)kHeaderSize + (unsigned __int128)n * kRecordSize);
  unsigned __int128 hashes = align64((unsigned __int128)cells + 8 * (unsigned __int128)c +
                                     8 * ((unsigned __int128)c + 1));
  unsigned __int128 end = hashes + 4 * (unsigned __int128)s;
  if (load<uint64_t>(head + 80) != kHeaderSize || load<uint64_t>(head + 88) != cells ||
      load<uint64_t>(head + 104) != hashes || load<uint64_t>(head + 120) != end)
    throw InvalidIndex(path, "section table does not match the record counts");
  h.cells_offset = cells;
  h.hash_offset = (uint64_t)hashes;
  h.file_size = (uint64_t)end;
  if (file_size < h.file_size)
    throw InvalidIndex(path, "truncated: the header says " + std::to_string(h.file_size) +
                                 " bytes, the file has " + std::to_string(file_size));
  if (file_size > h.file_size)
    throw InvalidIndex(path, std::to_string(file_size - h.file_size) +
                                 " unexpected trailing bytes (header says " +
                                 std::to_string(h.file_size) + " bytes)");
  return h;
}

// fileformat.cell_table_problem: what lets a query trust its runs to be disjoint.
void check_cells(const uint64_t* codes, const int64_t* starts, uint64_t c, uint64_t n,
                 const std::string& path) {
  for (uint64_t i = 1; i < c; i++)
    if (codes[i] <= codes[i - 1])
      throw InvalidIndex(path, "cell codes are not strictly ascending: the cell table is corrupt");
  if (starts[0] != 0 || starts[c] != (int64_t)n)
    throw InvalidIndex(path, "cell starts do not run from 0 to the record count " +
                                 std::to_string(n) + ": the cell table is corrupt");
  for (uint64_t i = 1; i <= c; i++)
    if (starts[i] < starts[i - 1])
      throw InvalidIndex(path, "cell starts go backwards (overlapping cell runs): the cell "
                               "table is corrupt");
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

FileIdent ident_of(const struct stat& st) {
  return {(uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
          (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
}

}  // namespace

std::shared_ptr<const Snapshot> Snapshot::open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) open_failed(path, errno);
  require_regular(st.st_mode, path);       // never open a FIFO: it would block
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) open_failed(path, errno);
  std::shared_ptr<Snapshot> snap(new Snapshot());
  void* map;
  try {
    if (::fstat(fd, &st) != 0) open_failed(path, errno);
    require_regular(st.st_mode, path);     // the path may have been swapped in between
    unsigned char head[kHeaderSize];
    ssize_t got = ::pread(fd, head, sizeof head, 0);
    if (got < 0) open_failed(path, errno);
    Header h = parse_header(head, (size_t)got, (uint64_t)st.st_size, path);
    map = ::mmap(nullptr, h.file_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) open_failed(path, errno);
    snap->base_ = static_cast<const unsigned char*>(map);
    snap->mapped_ = h.file_size;
    // The mapping must still say what pread said (the file is never modified in place).
    parse_header(snap->base_, h.file_size, (uint64_t)st.st_size, path);
    snap->h_ = h;
    snap->ident_ = ident_of(st);
    snap->records_ = snap->base_ + kHeaderSize;
    snap->words_ = reinterpret_cast<const uint64_t*>(snap->records_);
    snap->codes_ = reinterpret_cast<const uint64_t*>(snap->base_ + h.cells_offset);
    snap->starts_ = reinterpret_cast<const int64_t*>(snap->codes_ + h.cell_count);
    snap->table_ = reinterpret_cast<const uint32_t*>(snap->base_ + h.hash_offset);
    check_cells(snap->codes_, snap->starts_, h.cell_count, h.count, path);
  } catch (...) {
    ::close(fd);
    throw;                                 // ~Snapshot unmaps
  }
  ::close(fd);
  return snap;
}

Snapshot::~Snapshot() {
  if (base_) ::munmap(const_cast<unsigned char*>(base_), mapped_);
}

Index::Index(std::string path, int refresh_ms)
    : path_(std::move(path)), refresh_ns_(refresh_ms < 0 ? -1 : int64_t{refresh_ms} * 1000000) {
  snap_ = Snapshot::open(path_);
  next_check_ns_ = now_ns() + (refresh_ns_ > 0 ? refresh_ns_ : 0);
}

std::shared_ptr<const Snapshot> Index::current() {
  if (refresh_ns_ < 0) return snap_;                    // never refresh: no lock needed
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (now_ns() < next_check_ns_) return snap_;
  }
  return refresh();
}

std::shared_ptr<const Snapshot> Index::refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  next_check_ns_ = now_ns() + refresh_ns_;
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return snap_;
  FileIdent id = ident_of(st);
  if (id == snap_->ident() || (has_rejected_ && id == rejected_)) return snap_;
  std::shared_ptr<const Snapshot> next;
  try {
    next = Snapshot::open(path_);
  } catch (const InvalidIndex&) {
    return snap_;                                        // keep the last good generation
  }
  const Header &now = snap_->header(), &cand = next->header();
  if (cand.lineage == now.lineage && cand.generation < now.generation) {
    rejected_ = next->ident();                           // never go backwards in a lineage
    has_rejected_ = true;
    return snap_;
  }
  snap_ = next;
  return snap_;
}

}  // namespace lootlab
