"""Only the optional C extensions live here; all metadata is in pyproject.toml.

``lootlab._kernels`` is the C inner loops; ``lootlab._kernels_copycall`` is the same source
with the copy of each hit's bytes as a call perf can see as a frame (``LOOTLAB_KERNELS=copycall``
selects it; docs/profiling.md, "The memcpy question").  Both are optional: numpy is the fallback.
"""

import os
import threading

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = ["lootlab/_kernels.c"]
FLAGS = ["-O3"]


class BuildExt(build_ext):
    """Each extension compiles into its own temporary directory: both are built from one
    source, so they would otherwise share (and, under ``-j``, race for) one object file."""

    _lock = threading.Lock()

    def build_extension(self, ext: Extension) -> None:
        with self._lock:
            saved = self.build_temp
            self.build_temp = os.path.join(saved, ext.name)
            try:
                super().build_extension(ext)
            finally:
                self.build_temp = saved


setup(cmdclass={"build_ext": BuildExt}, ext_modules=[
    Extension("lootlab._kernels", SOURCE, extra_compile_args=FLAGS, optional=True),
    Extension("lootlab._kernels_copycall", SOURCE, extra_compile_args=FLAGS, optional=True,
              define_macros=[("LOOTLAB_COPY_CALL", "1"),
                             ("LOOTLAB_KERNELS_NAME", "_kernels_copycall")]),
])
