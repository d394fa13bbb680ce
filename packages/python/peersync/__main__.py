"""``python -m peersync ...`` and the ``peersync`` console script: run the bundled sidecar binary."""
import os
import subprocess
import sys

from . import binary_path


def main() -> None:
    exe = binary_path()
    if not os.access(exe, os.X_OK):
        sys.exit(f"peersync: the bundled sidecar binary is missing or not executable: {exe}")
    argv = [exe] + sys.argv[1:]
    if os.name == "posix":
        os.execv(exe, argv)  # the binary takes this process over: signals and exit codes are its own
    sys.exit(subprocess.call(argv))


if __name__ == "__main__":
    main()
