/* Inner loops of LootIndex.near, box, get and get_many, and the gRPC server's answer encoder.
 *
 * numpy drives these queries with ~20 array passes, each a Python call; here one pass
 * decodes each candidate key, tests it, and copies the hits into the result rows (the
 * memcpy of the story's flat-file reads).  The loop runs without the GIL, so reader
 * threads scale.  Built as an optional extension: lootlab falls back to numpy without it.
 *
 * Result rows match lootlab.records.RESULT_DTYPE: x, y, z (int32), 4 bytes of padding,
 * then the 16 metadata bytes exactly as on disk.
 *
 * Built twice (setup.py): lootlab._kernels, and lootlab._kernels_copycall with
 * -DLOOTLAB_COPY_CALL -DLOOTLAB_KERNELS_NAME=_kernels_copycall, where the copy of a hit's
 * bytes is a call to a function of its own, so perf can attribute it (docs/profiling.md,
 * "The memcpy question"); the default build's loop is unchanged.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {
    int32_t x, y, z, pad;
    uint64_t meta0, meta1;
} result_row;

/* The module's name: _kernels, or what the build passes (the copy-call variant). */
#ifndef LOOTLAB_KERNELS_NAME
#define LOOTLAB_KERNELS_NAME _kernels
#endif
#define KERNELS_STR_(n) #n
#define KERNELS_STR(n) KERNELS_STR_(n)
#define KERNELS_CAT_(a, b) a##b
#define KERNELS_CAT(a, b) KERNELS_CAT_(a, b)
#define MODULE_NAME "lootlab." KERNELS_STR(LOOTLAB_KERNELS_NAME)

/* The copy of one hit into its result row: decoded x, y, z, then the 16 metadata bytes.
 * Inline stores by default (what the compiler makes of them is the fast path); under
 * LOOTLAB_COPY_CALL a call to a function perf can see as a frame, so its samples are the
 * copy's, at the price of one call per hit (measured: docs/profiling.md). */
#ifdef LOOTLAB_COPY_CALL
__attribute__((noinline, noclone)) void lootlab_copy_record(result_row *o, const uint64_t *src,
                                                            int32_t x, int32_t y, int32_t z) {
    o->x = x; o->y = y; o->z = z; o->pad = 0;
    memcpy(&o->meta0, src + 1, 16);
}
#define COPY_RECORD(o, src, px, py, pz) lootlab_copy_record((o), (src), (px), (py), (pz))
#else
#define COPY_RECORD(o, src, px, py, pz) do {                               \
        (o)->x = (px); (o)->y = (py); (o)->z = (pz); (o)->pad = 0;         \
        (o)->meta0 = (src)[1];                                             \
        (o)->meta1 = (src)[2];                                             \
    } while (0)
#endif

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
                if (count < cap)
                    COPY_RECORD(out + count, w + 3 * i, (int32_t)x, (int32_t)y, (int32_t)z);
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

/* ---- point lookups (LootIndex.get / get_many) ----------------------------------------
 *
 * The hash table of docs/FORMAT.md, probed straight on the mapping: S u32 slots of record
 * numbers, linear probing from the home slot ((key * 0x9E3779B97F4A7C15) >> (64 - log2 S)),
 * 0xFFFFFFFF = empty, at most P probes (the builder's longest probe).  Nothing read from the
 * file is trusted for memory: n and S come from the lengths of the buffers handed in, a slot
 * value >= n is skipped, the slot index is masked to S, and P is clamped to S, so a damaged
 * or hostile file can give a wrong answer but never a read outside its sections or a probe
 * sequence longer than min(P, S). */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lootlab._kernels reads the little-endian file format in place"
#endif

#define HASH_MULTIPLIER 0x9E3779B97F4A7C15ULL
#define HASH_EMPTY 0xFFFFFFFFu
/* Keys in flight per batch of get_many (their cache misses overlap), and the records of a
 * probe run prefetched per key; -D overrides them for experiments.  Measured on the 2-core
 * dev VM, 1 M keys, 50 % hits: no run prefetch ~1.4x slower; batch 8..128 within noise. */
#ifndef LOOKUP_BATCH
#define LOOKUP_BATCH 32
#endif
#ifndef PREFETCH_RUN
#define PREFETCH_RUN 8
#endif

typedef struct {
    PyObject_HEAD
    Py_buffer words;                /* (n, 3) u64: key, meta0, meta1 */
    Py_buffer table;                /* S u32 */
    const uint64_t *w;
    const uint32_t *t;
    Py_ssize_t n;
    uint64_t mask;                  /* S - 1 */
    int bits;                       /* log2 S */
    Py_ssize_t max_probe;           /* min(P, S); 0: every lookup misses */
    PyTypeObject *record_type;      /* LootRecord: a tuple subclass without extra slots */
    double deadline;                /* get raises Retry from this time.monotonic() on */
    unsigned long long probes;      /* slots examined so far, for tests of the probe bound */
} Lookup;

static PyObject *RetryError;        /* lootlab._kernels.Retry: "take the checked road" */

static inline int pos_ok(int64_t x, int64_t y, int64_t z) {
    return x >= -BIAS && x < BIAS && z >= -BIAS && z < BIAS && y >= -2048 && y < 2048;
}

static inline uint64_t pack_pos(int64_t x, int64_t y, int64_t z) {
    const uint64_t m26 = ((uint64_t)1 << 26) - 1;
    return (((uint64_t)x & m26) << 38) | (((uint64_t)z & m26) << 12) | ((uint64_t)y & 0xFFF);
}

static inline uint64_t home_slot(const Lookup *lk, uint64_t key) {
    return lk->bits ? (key * HASH_MULTIPLIER) >> (64 - lk->bits) : 0;
}

/* Record number holding key, or -1: the probe sequence starting at slot, whose first
 * value (already loaded) is first; *probes grows by the slots examined (<= max_probe). */
static inline Py_ssize_t probe(const Lookup *lk, uint64_t key, uint64_t slot, uint32_t first,
                               unsigned long long *probes) {
    uint32_t i = first;
    for (Py_ssize_t p = 0; p < lk->max_probe; p++) {
        ++*probes;
        if (i == HASH_EMPTY) return -1;
        if ((Py_ssize_t)i < lk->n && lk->w[3 * (size_t)i] == key) return (Py_ssize_t)i;
        slot = (slot + 1) & lk->mask;
        if (p + 1 < lk->max_probe) i = lk->t[slot];
    }
    return -1;
}

static inline Py_ssize_t find(Lookup *lk, uint64_t key) {
    if (lk->max_probe == 0) return -1;
    uint64_t slot = home_slot(lk, key);
    return probe(lk, key, slot, lk->t[slot], &lk->probes);
}

static void Lookup_dealloc(Lookup *self) {
    if (self->words.obj) PyBuffer_Release(&self->words);
    if (self->table.obj) PyBuffer_Release(&self->table);
    Py_XDECREF(self->record_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Lookup_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *words, *table, *rtype;
    Py_ssize_t max_probe;
    static char *kwlist[] = {"words", "table", "max_probe", "record_type", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOnO:Lookup", kwlist, &words, &table,
                                     &max_probe, &rtype))
        return NULL;
    if (!PyType_Check(rtype) || !PyType_IsSubtype((PyTypeObject *)rtype, &PyTuple_Type) ||
        ((PyTypeObject *)rtype)->tp_basicsize != PyTuple_Type.tp_basicsize ||
        ((PyTypeObject *)rtype)->tp_itemsize != PyTuple_Type.tp_itemsize ||
        ((PyTypeObject *)rtype)->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "Lookup: record_type must be a tuple subclass with "
                        "no instance dict or slots (a NamedTuple)");
        return NULL;
    }
    Lookup *self = (Lookup *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    if (PyObject_GetBuffer(words, &self->words, PyBUF_SIMPLE) < 0) goto fail;
    if (PyObject_GetBuffer(table, &self->table, PyBUF_SIMPLE) < 0) goto fail;
    Py_ssize_t slots = self->table.len / 4;
    if (self->words.len % 24 || self->table.len % 4 || (slots & (slots - 1)) ||
        (uintptr_t)self->words.buf % 8 || (uintptr_t)self->table.buf % 4) {
        PyErr_SetString(PyExc_ValueError, "Lookup: words must be whole aligned 24-byte "
                        "records and the table a power-of-two count of aligned u32 slots");
        goto fail;
    }
    self->w = (const uint64_t *)self->words.buf;
    self->t = (const uint32_t *)self->table.buf;
    self->n = self->words.len / 24;
    self->mask = slots ? (uint64_t)slots - 1 : 0;
    self->bits = 0;
    while (((Py_ssize_t)1 << self->bits) < slots) self->bits++;
    if (max_probe < 0) max_probe = 0;
    self->max_probe = max_probe > slots ? slots : max_probe;   /* 0 when there is no slot */
    Py_INCREF(rtype);
    self->record_type = (PyTypeObject *)rtype;
    self->deadline = Py_HUGE_VAL;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* One exact int argument as a coordinate; 0 (no exception set) for anything else. */
static inline int coord_arg(PyObject *o, int64_t *out) {
    if (!PyLong_CheckExact(o)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    *out = v;
    return !overflow;
}

static PyObject *build_record(const Lookup *lk, PyObject *const *xyz, const uint64_t *rec) {
    PyObject *r = lk->record_type->tp_alloc(lk->record_type, 9);
    if (r == NULL) return NULL;
    uint64_t m0 = rec[1], m1 = rec[2];
    for (int k = 0; k < 3; k++) {
        Py_INCREF(xyz[k]);
        PyTuple_SET_ITEM(r, k, xyz[k]);
    }
    PyObject *v[6] = {
        PyLong_FromUnsignedLong((unsigned long)(m0 & 0xFFFFFFFFu)),      /* item_id */
        PyLong_FromUnsignedLong((unsigned long)(m0 >> 32)),              /* value */
        PyLong_FromLong((long)(m1 & 0xFFFF)),                            /* quantity */
        PyLong_FromLong((long)((m1 >> 16) & 0xFF)),                      /* rarity */
        PyLong_FromLong((long)((m1 >> 24) & 0xFF)),                      /* flags */
        PyLong_FromUnsignedLong((unsigned long)(m1 >> 32)),              /* tick */
    };
    for (int k = 0; k < 6; k++) {
        if (v[k] == NULL) {
            for (int j = k + 1; j < 6; j++) Py_XDECREF(v[j]);
            Py_DECREF(r);          /* items set so far are released with it */
            return NULL;
        }
        PyTuple_SET_ITEM(r, 3 + k, v[k]);
    }
    return r;
}

static PyObject *lookup_one(Lookup *self, PyObject *const *args, Py_ssize_t nargs,
                            int check_deadline) {
    int64_t x, y, z;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "Lookup.get takes x, y, z");
        return NULL;
    }
    if (check_deadline && self->deadline != Py_HUGE_VAL) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);         /* the clock of time.monotonic() */
        if ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec >= self->deadline) {
            PyErr_SetNone(RetryError);
            return NULL;
        }
    }
    if (!coord_arg(args[0], &x) || !coord_arg(args[1], &y) || !coord_arg(args[2], &z) ||
        !pos_ok(x, y, z)) {
        PyErr_SetNone(RetryError);
        return NULL;
    }
    Py_ssize_t i = find(self, pack_pos(x, y, z));
    if (i < 0) Py_RETURN_NONE;
    return build_record(self, args, self->w + 3 * (size_t)i);
}

PyDoc_STRVAR(Lookup_get_doc,
"get(x, y, z) -> record or None\n\n"
"The record at one position, for exact in-range ints before the deadline.  Anything else\n"
"(another type, out of range, the deadline reached) raises Retry: the caller refreshes\n"
"and checks its arguments, then calls find.");

static PyObject *Lookup_get(Lookup *self, PyObject *const *args, Py_ssize_t nargs) {
    return lookup_one(self, args, nargs, 1);
}

PyDoc_STRVAR(Lookup_find_doc,
"find(x, y, z) -> record or None\n\n"
"get without the deadline (x, y, z still exact in-range ints, else Retry).");

static PyObject *Lookup_find(Lookup *self, PyObject *const *args, Py_ssize_t nargs) {
    return lookup_one(self, args, nargs, 0);
}

/* Batch lookup of n positions (n x 3 int64).  Returns -1, or the first row outside the
 * packable range (nothing after it is written).  Keys go through in batches: the home
 * slots of a whole batch are prefetched, then the records they name, then the batch is
 * resolved, so the cache misses of LOOKUP_BATCH keys overlap instead of queueing. */
static Py_ssize_t lookup_many(const Lookup *lk, const int64_t *xyz, Py_ssize_t n,
                              uint8_t *found, result_row *out, unsigned long long *probes) {
    uint64_t key[LOOKUP_BATCH], slot[LOOKUP_BATCH];
    uint32_t first[LOOKUP_BATCH];
    for (Py_ssize_t base = 0; base < n; base += LOOKUP_BATCH) {
        int m = n - base < LOOKUP_BATCH ? (int)(n - base) : LOOKUP_BATCH;
        const int64_t *p = xyz + 3 * base;
        for (int j = 0; j < m; j++) {
            int64_t x = p[3 * j], y = p[3 * j + 1], z = p[3 * j + 2];
            if (!pos_ok(x, y, z)) return base + j;
            key[j] = pack_pos(x, y, z);
            slot[j] = home_slot(lk, key[j]);
            if (lk->max_probe) __builtin_prefetch(lk->t + slot[j]);
        }
        if (lk->max_probe) {
            /* every record of each key's probe run (up to PREFETCH_RUN of them): a miss
             * compares a few keys before its empty slot, each a random read */
            for (int j = 0; j < m; j++) {
                uint64_t s = slot[j];
                uint32_t i = first[j] = lk->t[s];
                Py_ssize_t run = lk->max_probe < PREFETCH_RUN ? lk->max_probe : PREFETCH_RUN;
                for (Py_ssize_t q = 0; q < run && i != HASH_EMPTY; q++) {
                    if ((Py_ssize_t)i < lk->n) __builtin_prefetch(lk->w + 3 * (size_t)i);
                    s = (s + 1) & lk->mask;
                    i = lk->t[s];
                }
            }
        }
        for (int j = 0; j < m; j++) {
            Py_ssize_t i = lk->max_probe ? probe(lk, key[j], slot[j], first[j], probes) : -1;
            result_row *o = out + base + j;
            if (i >= 0) {
                const uint64_t *r = lk->w + 3 * (size_t)i;
                o->x = (int32_t)p[3 * j]; o->y = (int32_t)p[3 * j + 1];
                o->z = (int32_t)p[3 * j + 2]; o->pad = 0;
                o->meta0 = r[1]; o->meta1 = r[2];
                found[base + j] = 1;
            } else {
                memset(o, 0, sizeof *o);
                found[base + j] = 0;
            }
        }
    }
    return -1;
}

PyDoc_STRVAR(Lookup_get_many_doc,
"get_many(xyz, found, out) -> -1 or the first bad row\n\n"
"Batch get: xyz a C-contiguous (n, 3) int64 buffer; found (n bytes) and out (n result rows)\n"
"are written (misses: 0 and a zero row), GIL released.  A row outside the packable range\n"
"stops the pass and its number is returned.");

static PyObject *Lookup_get_many(Lookup *self, PyObject *args) {
    Py_buffer xyz, found, out;
    if (!PyArg_ParseTuple(args, "y*w*w*", &xyz, &found, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = found.len;
    if (xyz.len != 24 * n || out.len != (Py_ssize_t)sizeof(result_row) * n ||
        (uintptr_t)xyz.buf % 8 || (uintptr_t)out.buf % 8) {
        PyErr_SetString(PyExc_ValueError, "Lookup.get_many: xyz must be n x 3 aligned int64, "
                        "found n bytes and out n aligned result rows");
        goto done;
    }
    Py_ssize_t bad;
    unsigned long long probes = 0;
    Py_BEGIN_ALLOW_THREADS
    bad = lookup_many(self, (const int64_t *)xyz.buf, n, (uint8_t *)found.buf,
                      (result_row *)out.buf, &probes);
    Py_END_ALLOW_THREADS
    self->probes += probes;
    result = PyLong_FromSsize_t(bad);
done:
    PyBuffer_Release(&xyz); PyBuffer_Release(&found); PyBuffer_Release(&out);
    return result;
}

static PyObject *Lookup_len(Lookup *self, void *closure) { return PyLong_FromSsize_t(self->n); }
static PyObject *Lookup_get_deadline(Lookup *self, void *closure) {
    return PyFloat_FromDouble(self->deadline);
}
static int Lookup_set_deadline(Lookup *self, PyObject *value, void *closure) {
    double d = value ? PyFloat_AsDouble(value) : -1.0;
    if (d == -1.0 && PyErr_Occurred()) return -1;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "deadline cannot be deleted");
        return -1;
    }
    self->deadline = d;
    return 0;
}
static PyObject *Lookup_probe(Lookup *self, void *closure) {
    return PyLong_FromSsize_t(self->max_probe);
}
static PyObject *Lookup_probes(Lookup *self, void *closure) {
    return PyLong_FromUnsignedLongLong(self->probes);
}

static PyMethodDef Lookup_methods[] = {
    {"get", (PyCFunction)(void (*)(void))Lookup_get, METH_FASTCALL, Lookup_get_doc},
    {"find", (PyCFunction)(void (*)(void))Lookup_find, METH_FASTCALL, Lookup_find_doc},
    {"get_many", (PyCFunction)Lookup_get_many, METH_VARARGS, Lookup_get_many_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Lookup_getset[] = {
    {"records", (getter)Lookup_len, NULL, "record count (from the words buffer's length)", NULL},
    {"max_probe", (getter)Lookup_probe, NULL, "probes a miss costs at most: min(P, S)", NULL},
    {"probes", (getter)Lookup_probes, NULL, "hash slots examined by all lookups so far", NULL},
    {"deadline", (getter)Lookup_get_deadline, (setter)Lookup_set_deadline,
     "time.monotonic() from which get raises Retry (inf: never)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Lookup_doc,
"Lookup(words, table, max_probe, record_type)\n\n"
"Point lookups on one mapped generation: words the (n, 3) u64 records, table the S u32 hash\n"
"slots, max_probe the header's longest probe P, record_type the tuple subclass get returns.\n"
"Holds the two buffers (and so the mapping) until it is dropped.");

static PyTypeObject LookupType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = MODULE_NAME ".Lookup",
    .tp_basicsize = sizeof(Lookup),
    .tp_dealloc = (destructor)Lookup_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Lookup_doc,
    .tp_methods = Lookup_methods,
    .tp_getset = Lookup_getset,
    .tp_new = Lookup_new,
};

static PyMethodDef methods[] = {
    {"query_cells", query_cells, METH_VARARGS, query_cells_doc},
    {"encode_records", encode_records, METH_VARARGS, encode_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, MODULE_NAME,
    "C inner loops for LootIndex.near/box/get/get_many and the server's answer encoder\n"
    "(optional; numpy is the fallback).", -1, methods,
};

PyMODINIT_FUNC KERNELS_CAT(PyInit_, LOOTLAB_KERNELS_NAME)(void) {
    if (PyType_Ready(&LookupType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    RetryError = PyErr_NewExceptionWithDoc(
        MODULE_NAME ".Retry", "Lookup.get cannot answer on its fast road (argument type "
        "or range, or the refresh deadline): check and refresh, then call find.", NULL, NULL);
    if (RetryError == NULL || PyModule_AddObject(m, "Retry", Py_NewRef(RetryError)) < 0) {
        Py_XDECREF(RetryError);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&LookupType);
    if (PyModule_AddObject(m, "Lookup", (PyObject *)&LookupType) < 0) {
        Py_DECREF(&LookupType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
