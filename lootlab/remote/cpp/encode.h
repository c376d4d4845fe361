// The wire bytes of a lootlab.v1.Records answer, written straight from the mapped records:
// byte for byte what lootlab/remote/encode.py (and SerializeToString) gives.
//   repeated: per record 0x0A, a one-byte length (a Record body is at most 46 bytes), then
//             each non-zero field as tag + varint in field-number order (proto3 omits
//             zeros; x, y, z are zigzag sint32); then generation (field 3) if non-zero.
//   packed:   0x12, varint length, the 24-byte records as in the file; then generation.
// Also the few Python formats the error messages need (repr of a float, "{n:,}").
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "index.h"

namespace lootlab {

constexpr size_t kRecordMaxWire = 2 + 54;    // tag, length, 9 x (tag + 5 varint bytes)

inline unsigned char* put_varint(unsigned char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

inline unsigned char* put_field(unsigned char* p, unsigned char tag, uint32_t v) {
  if (v) {
    *p++ = tag;
    p = put_varint(p, v);
  }
  return p;
}

inline uint32_t zigzag32(int32_t v) { return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31); }

// An upper bound on the answer's size, for the buffer.
inline size_t answer_capacity(size_t n, bool packed) {
  return (packed ? 24 * n : kRecordMaxWire * n) + 32;
}

// Encodes the records `rows` of `snap` into `out` (answer_capacity bytes); returns the
// bytes used.
inline size_t encode_answer(const Snapshot& snap, const std::vector<uint32_t>& rows, bool packed,
                            uint64_t generation, unsigned char* out) {
  unsigned char* p = out;
  if (packed) {
    if (!rows.empty()) {
      *p++ = 0x12;
      p = put_varint(p, 24 * (uint64_t)rows.size());
      for (uint32_t i : rows) {
        std::memcpy(p, snap.record(i), 24);
        p += 24;
      }
    }
  } else {
    for (uint32_t i : rows) {
      const unsigned char* r = snap.record(i);
      uint64_t k;
      uint32_t item_id, value, tick;
      uint16_t quantity;
      std::memcpy(&k, r, 8); std::memcpy(&item_id, r + 8, 4); std::memcpy(&value, r + 12, 4);
      std::memcpy(&quantity, r + 16, 2); std::memcpy(&tick, r + 20, 4);
      int32_t x = (int32_t)((int64_t)k >> 38), z = (int32_t)((int64_t)(k << 26) >> 38);
      int32_t y = (int32_t)((int64_t)(k << 52) >> 52);
      unsigned char* len = p + 1;
      unsigned char* body = p + 2;
      unsigned char* q = body;
      *p = 0x0A;
      q = put_field(q, 0x08, zigzag32(x));
      q = put_field(q, 0x10, zigzag32(y));
      q = put_field(q, 0x18, zigzag32(z));
      q = put_field(q, 0x20, item_id);
      q = put_field(q, 0x28, value);
      q = put_field(q, 0x30, quantity);
      q = put_field(q, 0x38, r[18]);
      q = put_field(q, 0x40, r[19]);
      q = put_field(q, 0x48, tick);
      *len = (unsigned char)(q - body);
      p = q;
    }
  }
  if (generation) {
    *p++ = 0x18;
    p = put_varint(p, generation);
  }
  return (size_t)(p - out);
}

// Python's repr() of a float: the shortest round-trip digits, exponent form when the
// decimal exponent is < -4 or >= 16, else positional with at least one fractional digit.
inline std::string py_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char sci[64];
  auto res = std::to_chars(sci, sci + sizeof sci, v, std::chars_format::scientific);
  std::string s(sci, res.ptr);                  // e.g. "-1.5e+03", "1e-05"
  size_t e = s.find('e');
  int exp = std::stoi(s.substr(e + 1));
  if (exp < -4 || exp >= 16) return s;          // Python prints the same "1e+16", "1.5e-05"
  std::string sign = s[0] == '-' ? "-" : "";
  std::string digits;
  for (size_t i = sign.size(); i < e; i++)
    if (s[i] != '.') digits += s[i];
  int point = exp + 1;                          // digits before the decimal point
  std::string out;
  if (point <= 0) {
    out = "0." + std::string((size_t)-point, '0') + digits;
  } else if ((size_t)point >= digits.size()) {
    out = digits + std::string((size_t)point - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, (size_t)point) + "." + digits.substr((size_t)point);
  }
  return sign + out;
}

// Python's "{n:,}": thousands separated by commas.
inline std::string with_commas(uint64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); i++) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// Python's "{v:g}" for the limits in messages (integral values print without a point).
inline std::string py_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace lootlab
