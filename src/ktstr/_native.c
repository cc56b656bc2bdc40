/*
 * ktstr._native: the few worker hot loops Python cannot run at a realistic rate.
 *
 * Built at install time by setup.py (`pip install -e .`, i.e. `make venv`);
 * the guest imports the same built file from the same tree.
 *
 * schbench_math(data, n, reps): schbench's do_some_math() `reps` times over one
 * writable buffer of 3*n*n uint64 (m1, m2, m3 back to back, as schbench's
 * thread_data->data): m3 = m1 x m2, the naive i/j/k loop with m2 read down a
 * column, unsigned arithmetic wrapping mod 2^64. It releases the interpreter
 * lock for the whole loop, so workers multiply in parallel as schbench's
 * threads do and a worker waiting for the interpreter does not show up as
 * scheduler latency.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* schbench's do_some_math(), statement for statement: m3 is read and written on
 * every k (it may alias m1/m2 as far as the compiler knows), as in schbench. */
static void do_some_math(uint64_t *data, size_t n)
{
	uint64_t *m1 = data, *m2 = data + n * n, *m3 = data + 2 * n * n;
	size_t i, j, k;

	for (i = 0; i < n; i++) {
		for (j = 0; j < n; j++) {
			m3[i * n + j] = 0;

			for (k = 0; k < n; k++)
				m3[i * n + j] += m1[i * n + k] * m2[k * n + j];
		}
	}
}

static PyObject *schbench_math(PyObject *self, PyObject *args)
{
	Py_buffer buf;
	Py_ssize_t n, reps, r;
	size_t need;

	(void)self;
	if (!PyArg_ParseTuple(args, "w*nn:schbench_math", &buf, &n, &reps))
		return NULL;
	if (n < 1 || reps < 0) {
		PyBuffer_Release(&buf);
		return PyErr_Format(PyExc_ValueError,
				    "schbench_math: n = %zd, reps = %zd; need n >= 1, reps >= 0",
				    n, reps);
	}
	need = 3 * (size_t)n * (size_t)n * sizeof(uint64_t);
	if ((size_t)buf.len < need || buf.itemsize != sizeof(uint64_t)) {
		PyErr_Format(PyExc_ValueError,
			     "schbench_math: buffer of %zd bytes (item %zd) for n = %zd; "
			     "need %zu bytes of uint64 (array('Q', 3*n*n))",
			     buf.len, buf.itemsize, n, need);
		PyBuffer_Release(&buf);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	for (r = 0; r < reps; r++)
		do_some_math((uint64_t *)buf.buf, (size_t)n);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&buf);
	Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
	{"schbench_math", schbench_math, METH_VARARGS,
	 "schbench_math(data, n, reps): schbench's do_some_math() reps times, GIL released."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT, "ktstr._native",
	"Native worker hot loops (schbench's matrix multiply).", -1, methods,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
	return PyModule_Create(&module);
}
