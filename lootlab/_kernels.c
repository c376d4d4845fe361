/* Inner loops of LootIndex.near and LootIndex.box, in C.
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
#include <stdlib.h>

typedef struct {
    int32_t x, y, z, pad;
    uint64_t meta0, meta1;
} result_row;

typedef struct {
    int is_box;
    int64_t x, y, z, r2;                /* near: centre and squared radius */
    int64_t lo[3], hi[3];               /* box: inclusive bounds */
} query;

/* Read run bounds from two Python sequences into C arrays, clamped to [0, n]. */
static Py_ssize_t read_runs(PyObject *starts, PyObject *ends, Py_ssize_t n,
                            Py_ssize_t **out_s, Py_ssize_t **out_e) {
    PyObject *fs = PySequence_Fast(starts, "starts must be a sequence");
    if (!fs) return -1;
    PyObject *fe = PySequence_Fast(ends, "ends must be a sequence");
    if (!fe) { Py_DECREF(fs); return -1; }
    Py_ssize_t runs = PySequence_Fast_GET_SIZE(fs);
    if (PySequence_Fast_GET_SIZE(fe) != runs) {
        PyErr_SetString(PyExc_ValueError, "starts and ends differ in length");
        Py_DECREF(fs); Py_DECREF(fe); return -1;
    }
    Py_ssize_t *s = PyMem_Malloc(sizeof(Py_ssize_t) * (runs ? runs : 1));
    Py_ssize_t *e = PyMem_Malloc(sizeof(Py_ssize_t) * (runs ? runs : 1));
    if (!s || !e) { PyMem_Free(s); PyMem_Free(e); Py_DECREF(fs); Py_DECREF(fe);
                    PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < runs; i++) {
        Py_ssize_t a = PyNumber_AsSsize_t(PySequence_Fast_GET_ITEM(fs, i), PyExc_OverflowError);
        Py_ssize_t b = PyNumber_AsSsize_t(PySequence_Fast_GET_ITEM(fe, i), PyExc_OverflowError);
        if (PyErr_Occurred()) { PyMem_Free(s); PyMem_Free(e); Py_DECREF(fs); Py_DECREF(fe);
                                return -1; }
        /* never trust an offset read from the file */
        s[i] = a < 0 ? 0 : (a > n ? n : a);
        e[i] = b < s[i] ? s[i] : (b > n ? n : b);
    }
    Py_DECREF(fs); Py_DECREF(fe);
    *out_s = s; *out_e = e;
    return runs;
}

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

static PyObject *run_select(Py_buffer *words, PyObject *starts, PyObject *ends, query *q,
                            Py_buffer *out) {
    PyObject *result = NULL;
    Py_ssize_t *s = NULL, *e = NULL;
    if (words->len % 24 || out->len % (Py_ssize_t)sizeof(result_row)) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes are not whole records/results");
        goto done;
    }
    Py_ssize_t runs = read_runs(starts, ends, words->len / 24, &s, &e);
    if (runs < 0) goto done;
    Py_ssize_t count;
    Py_BEGIN_ALLOW_THREADS
    count = select_rows((const uint64_t *)words->buf, s, e, runs, q,
                        (result_row *)out->buf, out->len / (Py_ssize_t)sizeof(result_row));
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(count);
done:
    PyMem_Free(s); PyMem_Free(e);
    PyBuffer_Release(words); PyBuffer_Release(out);
    return result;
}

PyDoc_STRVAR(select_near_doc,
"select_near(words, starts, ends, x, y, z, r2, out) -> count\n\n"
"Copy records of runs [starts[i], ends[i]) with dx^2+dy^2+dz^2 <= r2 into out (result rows).\n"
"Returns how many matched; only min(count, capacity) rows are written.");

static PyObject *select_near(PyObject *self, PyObject *args) {
    Py_buffer words, out;
    PyObject *starts, *ends;
    query q = {0};
    if (!PyArg_ParseTuple(args, "y*OOLLLLw*", &words, &starts, &ends, &q.x, &q.y, &q.z, &q.r2,
                          &out))
        return NULL;
    return run_select(&words, starts, ends, &q, &out);
}

PyDoc_STRVAR(select_box_doc,
"select_box(words, starts, ends, x0, y0, z0, x1, y1, z1, out) -> count\n\n"
"Copy records of the runs inside the inclusive box into out; returns how many matched.");

static PyObject *select_box(PyObject *self, PyObject *args) {
    Py_buffer words, out;
    PyObject *starts, *ends;
    query q = {0};
    q.is_box = 1;
    if (!PyArg_ParseTuple(args, "y*OOLLLLLLw*", &words, &starts, &ends, &q.lo[0], &q.lo[1],
                          &q.lo[2], &q.hi[0], &q.hi[1], &q.hi[2], &out))
        return NULL;
    return run_select(&words, starts, ends, &q, &out);
}

static PyMethodDef methods[] = {
    {"select_near", select_near, METH_VARARGS, select_near_doc},
    {"select_box", select_box, METH_VARARGS, select_box_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lootlab._kernels",
    "C inner loops for LootIndex.near/box (optional; numpy is the fallback).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
