"""Adds the native module (tokenizer and extract bindings) to the package when a build of it is present.

The module is built by fme's CMake (python/native, target fme_native) into BUILD/python/fme/. This file only
copies it in: the C++ is compiled once, by the same build as the fme binary, never by pip. BUILD is
$FME_BUILD_DIR, else ../build beside this folder. Without a build the package is pure Python (the readers and
the stream) and fme.Tokenizer / fme.extract say how to get them.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def native_modules():
    build = os.environ.get("FME_BUILD_DIR") or os.path.join(HERE, "..", "build")
    return sorted(glob.glob(os.path.join(os.path.abspath(build), "python", "fme", "_native*.so")))


class BuildPyWithNative(build_py):
    def run(self):
        super().run()
        for path in native_modules():
            dest = os.path.join(self.build_lib, "fme", os.path.basename(path))
            shutil.copyfile(path, dest)


class MaybeBinaryDistribution(Distribution):
    # A wheel holding the native module is tagged for this Python and platform, not py3-none-any.
    def has_ext_modules(self):
        return bool(native_modules())


setup(cmdclass={"build_py": BuildPyWithNative}, distclass=MaybeBinaryDistribution)
