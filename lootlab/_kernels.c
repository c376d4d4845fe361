/* Inner loops of LootIndex.near and LootIndex.box, and the gRPC server's answer encoder, in C.
 *
 * numpy drives these queries with ~20 array passes, each a Python call; here one pass
 * decodes each candidate key, tests it, and copies the hits into the result rows (the
 * memcpy of the story's flat-file reads).  The loop runs without the GIL, so reader
 * threads scale.  Built as an optional extension: lootlab falls back to numpy without it.
 *
 * Result rows match lootlab.records.RESULT_DTYPE: x, y, z (int32), 4 bytes of padding,
 * then the 16 metadata bytes exactly as on disk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int32_t x, y, z, pad;
    uint64_t meta0, meta1;
} result_row;

typedef struct {
    int is_box;
    int64_t x, y, z, r2;                /* near: centre and squared radius */
    int64_t lo[3], hi[3];               /* box: inclusive bounds */
} query;

static Py_ssize_t select_rows(const uint64_t *w, const Py_ssize_t *s, const Py_ssize_t *e,
                              Py_ssize_t runs, const query *q, result_row *out, Py_ssize_t cap) {
    Py_ssize_t count = 0;
    for (Py_ssize_t r = 0; r < runs; r++) {
        for (Py_ssize_t i = s[r]; i < e[r]; i++) {
            uint64_t k = w[3 * i];
            int64_t x = (int64_t)k >> 38;
            int64_t z = (int64_t)(k << 26) >> 38;
            int64_t y = (int64_t)(k << 52) >> 52;
            int hit;
            if (q->is_box) {
                hit = x >= q->lo[0] && x <= q->hi[0] && y >= q->lo[1] && y <= q->hi[1] &&
                      z >= q->lo[2] && z <= q->hi[2];
            } else {
                int64_t dx = x - q->x, dy = y - q->y, dz = z - q->z;
                hit = dx * dx + dy * dy + dz * dz <= q->r2;
            }
            if (hit) {
                if (count < cap) {
                    result_row *o = out + count;
                    o->x = (int32_t)x; o->y = (int32_t)y; o->z = (int32_t)z; o->pad = 0;
                    o->meta0 = w[3 * i + 1];
                    o->meta1 = w[3 * i + 2];
                }
                count++;
            }
        }
    }
    return count;
}

/* First index in codes[0..n) whose value is >= key. */
static Py_ssize_t lower_bound(const uint64_t *codes, Py_ssize_t n, uint64_t key) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (codes[mid] < key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

#define BIAS ((int64_t)1 << 25)
#define ROWS_BY_SEARCH 64

/* Records [s, e) of one run, clamped so that runs never leave [0, n) or overlap: *floor
 * is where the previous run ended.  The reader checks the cell table at open, but the
 * loops must not depend on that: whatever the table says, a query reads each record at
 * most once, so it returns at most n rows. */
static void clamp_run(int64_t s, int64_t e, Py_ssize_t n, Py_ssize_t *floor,
                      Py_ssize_t *out_s, Py_ssize_t *out_e) {
    if (s < *floor) s = *floor;
    if (s > n) s = n;
    if (e < s) e = s;
    if (e > n) e = n;
    *out_s = (Py_ssize_t)s;
    *out_e = (Py_ssize_t)e;
    *floor = (Py_ssize_t)e;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Select from the cells overlapping the column box x0..x1, z0..z1 (clipped here to the
 * packable range, so rows and z cells stay within [0, 2^(26-shift)) whatever the caller
 * passes): the runs are found here too, so a query is one call.  All bounds are signed;
 * every loop is bounded by the row count or the cell count. */
static Py_ssize_t select_cells(const uint64_t *w, Py_ssize_t n, const uint64_t *codes,
                               const int64_t *starts, Py_ssize_t cells, int shift,
                               int64_t x0, int64_t x1, int64_t z0, int64_t z1,
                               const query *q, result_row *out, Py_ssize_t cap) {
    Py_ssize_t count = 0, floor = 0, s, e;
    x0 = clamp64(x0, -BIAS, BIAS - 1); x1 = clamp64(x1, -BIAS, BIAS - 1);
    z0 = clamp64(z0, -BIAS, BIAS - 1); z1 = clamp64(z1, -BIAS, BIAS - 1);
    if (x0 > x1 || z0 > z1) return 0;
    int64_t r0 = (x0 + BIAS) >> shift, r1 = (x1 + BIAS) >> shift;
    uint64_t cz0 = (uint64_t)((z0 + BIAS) >> shift), cz1 = (uint64_t)((z1 + BIAS) >> shift) + 1;
    if (r1 - r0 < ROWS_BY_SEARCH) {
        for (int64_t row = r0; row <= r1; row++) {
            uint64_t base = (uint64_t)row << 26;
            Py_ssize_t lo = lower_bound(codes, cells, base + cz0);
            Py_ssize_t hi = lower_bound(codes, cells, base + cz1);
            if (hi <= lo) continue;
            clamp_run(starts[lo], starts[hi], n, &floor, &s, &e);
            count += select_rows(w, &s, &e, 1, q, out + (count < cap ? count : cap),
                                 count < cap ? cap - count : 0);
        }
    } else {
        Py_ssize_t a = lower_bound(codes, cells, (uint64_t)r0 << 26);
        Py_ssize_t b = lower_bound(codes, cells, (uint64_t)(r1 + 1) << 26);
        for (Py_ssize_t c = a; c < b; c++) {
            uint64_t cz = codes[c] & (((uint64_t)1 << 26) - 1);
            if (cz < cz0 || cz >= cz1) continue;
            clamp_run(starts[c], starts[c + 1], n, &floor, &s, &e);
            count += select_rows(w, &s, &e, 1, q, out + (count < cap ? count : cap),
                                 count < cap ? cap - count : 0);
        }
    }
    return count;
}

PyDoc_STRVAR(query_cells_doc,
"query_cells(words, codes, starts, shift, x0, x1, z0, z1, mode, a, b, c, d, e, f, out) -> count\n\n"
"One whole near (mode 0: centre a b c, squared radius d) or box (mode 1: lo a b c, hi d e f)\n"
"query over the cells overlapping the column box x0..x1, z0..z1.  Writes min(count, capacity)\n"
"result rows; a count above the capacity means: grow the buffer and call again.");

static PyObject *query_cells(PyObject *self, PyObject *args) {
    Py_buffer words, codes, starts, out;
    int shift, mode;
    long long x0, x1, z0, z1, p[6];
    query q = {0};
    if (!PyArg_ParseTuple(args, "y*y*y*iLLLLiLLLLLLw*", &words, &codes, &starts, &shift, &x0,
                          &x1, &z0, &z1, &mode, &p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t cells = codes.len / 8;
    if (words.len % 24 || codes.len % 8 || starts.len != 8 * (cells + 1) ||
        out.len % (Py_ssize_t)sizeof(result_row) || shift < 0 || shift > 26 ||
        (mode != 0 && mode != 1)) {
        PyErr_SetString(PyExc_ValueError, "inconsistent buffers for query_cells");
        goto done;
    }
    q.is_box = mode == 1;
    if (q.is_box) {
        q.lo[0] = p[0]; q.lo[1] = p[1]; q.lo[2] = p[2];
        q.hi[0] = p[3]; q.hi[1] = p[4]; q.hi[2] = p[5];
    } else {
        q.x = p[0]; q.y = p[1]; q.z = p[2]; q.r2 = p[3];
    }
    Py_ssize_t count = 0;
    if (cells && x0 <= x1 && z0 <= z1) {
        Py_BEGIN_ALLOW_THREADS
        count = select_cells((const uint64_t *)words.buf, words.len / 24,
                             (const uint64_t *)codes.buf, (const int64_t *)starts.buf, cells,
                             shift, x0, x1, z0, z1, &q, (result_row *)out.buf,
                             out.len / (Py_ssize_t)sizeof(result_row));
        Py_END_ALLOW_THREADS
    }
    result = PyLong_FromSsize_t(count);
done:
    PyBuffer_Release(&words); PyBuffer_Release(&codes); PyBuffer_Release(&starts);
    PyBuffer_Release(&out);
    return result;
}

/* ---- protobuf encoding of an answer (lootlab.remote.encode) --------------------------
 *
 * The bytes `Records(records=[...], generation=g).SerializeToString()` gives, written
 * straight from RESULT_DTYPE rows: per record the tag of field 1 (0x0A), a one-byte
 * length (a Record takes at most 46 bytes: 3 x (1 + 5) for zigzag sint32 plus
 * 6 x (1 + 5) for uint32, so the length is always one varint byte), then each non-zero
 * field as tag + varint in field-number order; then generation (field 3) if non-zero. */

#define RECORD_MAX_BODY 54          /* 9 fields x (1 tag + 5 varint bytes), > 46 */

static unsigned char *put_varint(unsigned char *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static unsigned char *put_field(unsigned char *p, unsigned char tag, uint32_t v) {
    if (v) {
        *p++ = tag;
        p = put_varint(p, v);
    }
    return p;
}

static uint32_t zigzag32(int32_t v) {
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static Py_ssize_t encode_rows(const unsigned char *rows, Py_ssize_t n, uint64_t generation,
                              unsigned char *out) {
    unsigned char *p = out;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *r = rows + 32 * i;
        int32_t x, y, z;
        uint32_t item_id, value, tick;
        uint16_t quantity;
        memcpy(&x, r, 4); memcpy(&y, r + 4, 4); memcpy(&z, r + 8, 4);
        memcpy(&item_id, r + 16, 4); memcpy(&value, r + 20, 4);
        memcpy(&quantity, r + 24, 2); memcpy(&tick, r + 28, 4);
        unsigned char *len = p + 1, *body = p + 2, *q = body;
        *p = 0x0A;
        q = put_field(q, 0x08, zigzag32(x));
        q = put_field(q, 0x10, zigzag32(y));
        q = put_field(q, 0x18, zigzag32(z));
        q = put_field(q, 0x20, item_id);
        q = put_field(q, 0x28, value);
        q = put_field(q, 0x30, quantity);
        q = put_field(q, 0x38, r[26]);
        q = put_field(q, 0x40, r[27]);
        q = put_field(q, 0x48, tick);
        *len = (unsigned char)(q - body);
        p = q;
    }
    if (generation) {
        *p++ = 0x18;
        p = put_varint(p, generation);
    }
    return p - out;
}

PyDoc_STRVAR(encode_records_doc,
"encode_records(rows, generation) -> bytes\n\n"
"A lootlab.v1.Records message (repeated Record, then generation) from a C-contiguous\n"
"buffer of 32-byte RESULT_DTYPE rows, byte for byte what SerializeToString gives.");

static PyObject *encode_records(PyObject *self, PyObject *args) {
    Py_buffer rows;
    unsigned long long generation;
    if (!PyArg_ParseTuple(args, "y*K", &rows, &generation))
        return NULL;
    PyObject *result = NULL;
    if (rows.len % 32) {
        PyErr_Format(PyExc_ValueError, "encode_records: %zd bytes is not a whole number of "
                     "32-byte result rows", rows.len);
        goto done;
    }
    Py_ssize_t n = rows.len / 32;
    if (n > (PY_SSIZE_T_MAX - 16) / (2 + RECORD_MAX_BODY)) {
        PyErr_SetString(PyExc_OverflowError, "encode_records: too many rows");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n * (2 + RECORD_MAX_BODY) + 11);
    if (result == NULL)
        goto done;
    Py_ssize_t used;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    used = encode_rows((const unsigned char *)rows.buf, n, (uint64_t)generation, out);
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&result, used) < 0)
        result = NULL;
done:
    PyBuffer_Release(&rows);
    return result;
}

static PyMethodDef methods[] = {
    {"query_cells", query_cells, METH_VARARGS, query_cells_doc},
    {"encode_records", encode_records, METH_VARARGS, encode_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lootlab._kernels",
    "C inner loops for LootIndex.near/box and the server's answer encoder (optional; numpy\n"
    "is the fallback).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
