"""`ktstr locks` through the real console script, on a private cache."""

import subprocess
import sys
from pathlib import Path


def test_locks_with_no_holders(tmp_path):
    ktstr = Path(sys.executable).with_name("ktstr")
    out = subprocess.run([str(ktstr), "locks"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "KTSTR_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"no host CPU is held (locks in {tmp_path / 'cpu-locks'})\n"
