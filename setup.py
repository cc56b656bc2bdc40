"""Only the C extension lives here; all other metadata is in pyproject.toml.

`pip install -e .` (`make venv`) compiles src/ktstr/_native.c into
src/ktstr/_native*.so next to the sources, so the guest, which imports this same
tree, loads the same library. The build needs gcc and the Python headers
(python3-dev; scripts/setup-host.sh installs both).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ktstr._native", ["src/ktstr/_native.c"],
                             extra_compile_args=["-O2", "-Wall", "-Wextra"])])
