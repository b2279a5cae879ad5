"""Build the Cython kernels in ``ext/`` (C++, -O3) next to the pure-Python packages.

``pip install .`` and ``pip install -e .`` both compile them. Set ``TAPESHOT_DEBUG_COUNTERS=1`` to build with the
kernels' debug counters compiled in (release builds pay nothing for them).
"""

import os
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
EXT_DIR = "ext"
# -ffp-contract=off: no fused multiply-adds, so kernels agree bit for bit with their Python references
# on every build (with -march=native GCC would otherwise fuse them).
CFLAGS = ["-O3", "-ffp-contract=off", "-std=c++17", "-fno-strict-aliasing", "-Wno-unused-function",
          "-Wno-unreachable-code"]
if sys.platform != "win32" and os.environ.get("TAPESHOT_NATIVE") == "1":
    CFLAGS.append("-march=native")


def _extensions() -> list[Extension]:
    mods = sorted(p.stem for p in (HERE / EXT_DIR).glob("*.pyx"))
    return [
        Extension(f"ext.{name}", [f"{EXT_DIR}/{name}.pyx"], language="c++", extra_compile_args=CFLAGS)
        for name in mods
    ]


setup(
    ext_modules=cythonize(
        _extensions(),
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        compile_time_env={"DEBUG_COUNTERS": os.environ.get("TAPESHOT_DEBUG_COUNTERS") == "1"},
        nthreads=0,
    ),
)
