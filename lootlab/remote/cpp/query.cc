// The queries of LootIndex (lootlab/index.py) over one snapshot, with its argument checks
// (lootlab/queryargs.py) and the cell walk of the query_cells kernel (lootlab/_kernels.c):
// the same runs, in the same order, clamped the same way, so the rows and their order
// equal LootIndex's.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "index.h"

namespace lootlab {
namespace {

constexpr uint64_t kHashMultiplier = 0x9E3779B97F4A7C15ull;
constexpr uint32_t kHashEmpty = 0xFFFFFFFFu;
constexpr int64_t kRowsBySearch = 64;       // wider than this many cell rows: scan cells
constexpr double kMaxR = 268435456.0;       // queryargs.MAX_R = 2^28

inline void decode(uint64_t k, int64_t* x, int64_t* y, int64_t* z) {
  *x = (int64_t)k >> 38;
  *z = (int64_t)(k << 26) >> 38;
  *y = (int64_t)(k << 52) >> 52;
}

inline uint64_t pack(int64_t x, int64_t y, int64_t z) {
  const uint64_t m26 = (uint64_t{1} << 26) - 1;
  return (((uint64_t)x & m26) << 38) | (((uint64_t)z & m26) << 12) | ((uint64_t)y & 0xFFF);
}

int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

size_t lower_bound(const uint64_t* codes, size_t n, uint64_t key) {
  return (size_t)(std::lower_bound(codes, codes + n, key) - codes);
}

int64_t isqrt(int64_t v) {                  // math.isqrt: floor of the square root
  int64_t s = (int64_t)std::sqrt((double)v);
  while (s > 0 && s * s > v) s--;
  while ((s + 1) * (s + 1) <= v) s++;
  return s;
}

// Python's float ** 2 is libm's pow; call it, not a folded x * x, so floor() agrees.
double (*volatile libm_pow)(double, double) = std::pow;

void check_point(int64_t x, int64_t y, int64_t z) {
  if (!in_range(x, y, z)) throw QueryError(position_problem(x, y, z));
}

}  // namespace

bool in_range(int64_t x, int64_t y, int64_t z) {
  return -kBias <= x && x < kBias && kYMin <= y && y <= kYMax && -kBias <= z && z < kBias;
}

std::string position_problem(int64_t x, int64_t y, int64_t z) {
  return "position (" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) +
         ") is outside the packable range (x, z in [-33554432, 33554431], y in [-2048, 2047])";
}

struct Snapshot::Query {
  enum Kind { kNear, kBox, kAll } kind;
  int64_t x = 0, y = 0, z = 0, r2 = 0;      // near: centre and squared radius
  int64_t lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};   // box: inclusive bounds

  bool hit(uint64_t k) const {
    if (kind == kAll) return true;
    int64_t rx, ry, rz;
    decode(k, &rx, &ry, &rz);
    if (kind == kBox)
      return rx >= lo[0] && rx <= hi[0] && ry >= lo[1] && ry <= hi[1] && rz >= lo[2] &&
             rz <= hi[2];
    int64_t dx = rx - x, dy = ry - y, dz = rz - z;
    return dx * dx + dy * dy + dz * dz <= r2;
  }
};

// The kernel's select_cells: the runs of the cells overlapping the column box, clipped to
// the packable range, each clamped to [previous run's end, N] so no record is read twice.
void Snapshot::select_cells(int64_t x0, int64_t x1, int64_t z0, int64_t z1, const Query& q,
                            std::vector<uint32_t>& out) const {
  const size_t cells = h_.cell_count;
  const int64_t n = (int64_t)h_.count;
  const int shift = h_.cell_shift;
  if (!cells || x0 > x1 || z0 > z1) return;
  x0 = clamp64(x0, -kBias, kBias - 1); x1 = clamp64(x1, -kBias, kBias - 1);
  z0 = clamp64(z0, -kBias, kBias - 1); z1 = clamp64(z1, -kBias, kBias - 1);
  if (x0 > x1 || z0 > z1) return;
  int64_t floor = 0;
  auto run = [&](int64_t s, int64_t e) {
    if (s < floor) s = floor;
    if (s > n) s = n;
    if (e < s) e = s;
    if (e > n) e = n;
    floor = e;
    for (int64_t i = s; i < e; i++)
      if (q.hit(words_[3 * i])) out.push_back((uint32_t)i);
  };
  int64_t r0 = (x0 + kBias) >> shift, r1 = (x1 + kBias) >> shift;
  uint64_t cz0 = (uint64_t)((z0 + kBias) >> shift), cz1 = (uint64_t)((z1 + kBias) >> shift) + 1;
  if (r1 - r0 < kRowsBySearch) {
    for (int64_t row = r0; row <= r1; row++) {
      uint64_t base = (uint64_t)row << 26;
      size_t lo = lower_bound(codes_, cells, base + cz0), hi = lower_bound(codes_, cells, base + cz1);
      if (hi > lo) run(starts_[lo], starts_[hi]);
    }
  } else {
    size_t a = lower_bound(codes_, cells, (uint64_t)r0 << 26);
    size_t b = lower_bound(codes_, cells, (uint64_t)(r1 + 1) << 26);
    for (size_t c = a; c < b; c++) {
      uint64_t cz = codes_[c] & ((uint64_t{1} << 26) - 1);
      if (cz >= cz0 && cz < cz1) run(starts_[c], starts_[c + 1]);
    }
  }
}

bool Snapshot::get(int64_t x, int64_t y, int64_t z, uint32_t* found) const {
  check_point(x, y, z);
  const uint64_t key = pack(x, y, z), n = h_.count, mask = h_.hash_slots - 1;
  const int bits = 63 - __builtin_clzll(h_.hash_slots);
  uint64_t slot = (key * kHashMultiplier) >> (64 - bits);
  for (uint32_t probe = 0; probe < h_.max_probe; probe++) {   // none lies farther
    uint32_t i = table_[slot];
    if (i == kHashEmpty) return false;
    if (i < n && words_[3 * (uint64_t)i] == key) {
      *found = i;
      return true;
    }
    slot = (slot + 1) & mask;
  }
  return false;
}

void Snapshot::near(int64_t x, int64_t y, int64_t z, double r, std::vector<uint32_t>& out) const {
  check_point(x, y, z);
  if (!std::isfinite(r) || r < 0) throw QueryError("radius must be finite and >= 0");
  const int64_t r2 = (int64_t)std::floor(libm_pow(std::min(r, kMaxR), 2.0));
  const int64_t reach = isqrt(r2);
  if (!h_.count || y + reach < h_.bmin[1] || y - reach > h_.bmax[1]) return;
  Query q{Query::kNear};
  q.x = x; q.y = y; q.z = z; q.r2 = r2;
  select_cells(std::max<int64_t>(x - reach, h_.bmin[0]), std::min<int64_t>(x + reach, h_.bmax[0]),
               std::max<int64_t>(z - reach, h_.bmin[2]), std::min<int64_t>(z + reach, h_.bmax[2]),
               q, out);
}

void Snapshot::box(const int64_t lo[3], const int64_t hi[3], std::vector<uint32_t>& out) const {
  check_point(lo[0], lo[1], lo[2]);
  check_point(hi[0], hi[1], hi[2]);
  if (!h_.count || lo[0] > hi[0] || lo[1] > hi[1] || lo[2] > hi[2]) return;
  if (hi[1] < h_.bmin[1] || lo[1] > h_.bmax[1]) return;
  Query q{Query::kBox};
  for (int a = 0; a < 3; a++) { q.lo[a] = lo[a]; q.hi[a] = hi[a]; }
  select_cells(std::max<int64_t>(lo[0], h_.bmin[0]), std::min<int64_t>(hi[0], h_.bmax[0]),
               std::max<int64_t>(lo[2], h_.bmin[2]), std::min<int64_t>(hi[2], h_.bmax[2]), q, out);
}

// LootIndex.knn: widen a column box from one cell until it holds k records within its
// reach (or covers the bounding box), then the k nearest, ties broken by key.  Since every
// record within the reach is a candidate, this is the k smallest (d², key) of the index.
void Snapshot::knn(int64_t x, int64_t y, int64_t z, uint64_t k, std::vector<uint32_t>& out) const {
  check_point(x, y, z);
  if (k == 0 || !h_.count) return;
  k = std::min<uint64_t>(k, h_.count);
  const Query all{Query::kAll};
  std::vector<uint32_t> cand;
  std::vector<std::pair<int64_t, uint64_t>> inside;      // (d², index) of candidates
  for (int64_t reach = int64_t{1} << h_.cell_shift;; reach *= 2) {
    const int64_t x0 = x - reach, x1 = x + reach, z0 = z - reach, z1 = z + reach;
    cand.clear();
    select_cells(std::max<int64_t>(x0, h_.bmin[0]), std::min<int64_t>(x1, h_.bmax[0]),
                 std::max<int64_t>(z0, h_.bmin[2]), std::min<int64_t>(z1, h_.bmax[2]), all, cand);
    const bool everything = x0 <= h_.bmin[0] && x1 >= h_.bmax[0] && z0 <= h_.bmin[2] &&
                            z1 >= h_.bmax[2];
    inside.clear();
    for (uint32_t i : cand) {
      int64_t rx, ry, rz;
      decode(words_[3 * (uint64_t)i], &rx, &ry, &rz);
      int64_t d2 = (rx - x) * (rx - x) + (ry - y) * (ry - y) + (rz - z) * (rz - z);
      if (everything || d2 <= reach * reach) inside.emplace_back(d2, i);
    }
    if (inside.size() >= k || everything) break;
  }
  auto closer = [this](const std::pair<int64_t, uint64_t>& a,
                       const std::pair<int64_t, uint64_t>& b) {
    if (a.first != b.first) return a.first < b.first;
    return words_[3 * a.second] < words_[3 * b.second];
  };
  const size_t take = std::min<size_t>(k, inside.size());
  std::partial_sort(inside.begin(), inside.begin() + take, inside.end(), closer);
  for (size_t j = 0; j < take; j++) out.push_back((uint32_t)inside[j].second);
}

}  // namespace lootlab
