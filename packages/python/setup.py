"""The wheel holds prebuilt native files: tag it for this platform, for any Python 3 (no Python ABI).

packages/build.sh then hands it to auditwheel, which checks the binaries and gives the manylinux tag.
"""
from setuptools import setup
from setuptools.dist import Distribution
try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(distclass=BinaryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
