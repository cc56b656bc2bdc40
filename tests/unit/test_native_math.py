"""ktstr._native.schbench_math: the C multiply equals a pure-Python reference."""

from __future__ import annotations

import random
import threading
import time
from array import array

import pytest

from ktstr import _native
from ktstr.errors import ConfigError
from ktstr.work.schbench import Matrices

MASK = (1 << 64) - 1


def reference(data: list[int], n: int) -> list[int]:
    """schbench's do_some_math in plain Python: m3 = m1 x m2, unsigned 64-bit."""
    nn = n * n
    return [sum(data[i * n + k] * data[nn + k * n + j] for k in range(n)) & MASK
            for i in range(n) for j in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_native_equals_reference_with_wraparound(n: int) -> None:
    rng = random.Random(n)
    nn = n * n
    # large values: the products and sums wrap mod 2^64, as schbench's unsigned long
    vals = [rng.getrandbits(64) for _ in range(2 * nn)] + [rng.getrandbits(64) for _ in range(nn)]
    data = array("Q", vals)
    _native.schbench_math(data, n, 3)
    assert list(data[2 * nn:]) == reference(vals, n)
    assert list(data[:2 * nn]) == vals[:2 * nn]  # inputs untouched


def test_native_zero_reps_leaves_the_buffer() -> None:
    data = array("Q", range(12))
    _native.schbench_math(data, 2, 0)
    assert list(data) == list(range(12))


@pytest.mark.parametrize("bad", [
    (array("Q", [0] * 11), 2, 1),   # one item short of 3*n*n
    (array("I", [0] * 12), 2, 1),   # 4-byte items
    (array("Q", [0] * 12), 0, 1),   # n < 1
    (array("Q", [0] * 12), 2, -1),  # reps < 0
])
def test_native_rejects_bad_buffers(bad: tuple[array[int], int, int]) -> None:
    with pytest.raises(ValueError, match="schbench_math"):
        _native.schbench_math(*bad)


def test_native_rejects_read_only_buffers() -> None:
    with pytest.raises(TypeError):
        _native.schbench_math(bytes(96), 2, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1, 5, 36])
def test_python_fallback_and_native_agree(n: int) -> None:
    native, python = Matrices(n, native=True), Matrices(n, native=False)
    assert list(native.data) == list(python.data)
    native.multiply(2)
    python.multiply(2)
    assert native.product() == python.product() == reference(list(python.data), n)


def test_native_releases_the_interpreter_lock() -> None:
    """A Python thread keeps running while another thread multiplies in C.

    Holding the lock, the call would let no Python run inside it except within a
    switch interval (5 ms) of its ends; so look for stamps well inside.
    """
    m = Matrices(104, native=True)
    stamps: list[float] = []
    window = [False]
    done = threading.Event()

    def stamp() -> None:
        while not done.is_set():
            if window[0]:
                stamps.append(time.perf_counter())

    t = threading.Thread(target=stamp)
    t.start()
    time.sleep(0.01)
    window[0] = True
    t0 = time.perf_counter()
    m.multiply(200)
    t1 = time.perf_counter()
    window[0] = False
    done.set()
    t.join()
    margin = 0.02
    assert t1 - t0 > 3 * margin, f"multiply(200) took only {t1 - t0:.3f} s"
    inside = [s for s in stamps if t0 + margin < s < t1 - margin]
    assert inside, f"no Python ran during {t1 - t0:.3f} s of C multiply"


def test_native_true_without_the_extension_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ktstr.work.schbench as sb

    monkeypatch.setattr(sb, "_native_math", None)
    with pytest.raises(ConfigError, match="make venv"):
        Matrices(4, native=True)
    assert not Matrices(4).native


def test_python_fallback_stops_between_rows() -> None:
    m = Matrices(104, native=False)
    stopping = threading.Event()
    stopping.set()
    t = time.perf_counter()
    m.multiply(1000, stopping)  # 1000 products would take minutes
    assert time.perf_counter() - t < 1.0
