"""Only the optional C extension lives here; all metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("lootlab._kernels", ["lootlab/_kernels.c"],
                             extra_compile_args=["-O3"], optional=True)])
