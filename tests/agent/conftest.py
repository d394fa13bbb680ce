# The agent suite's fixtures: the sidecar suite's helpers (devices, sidecars, ports), plus the agent's ctypes wrapper.
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_spec = importlib.util.spec_from_file_location("sidecar_helpers", HERE.parent / "sidecar" / "conftest.py")
sidecar_helpers = importlib.util.module_from_spec(_spec)
sys.modules["sidecar_helpers"] = sidecar_helpers
_spec.loader.exec_module(sidecar_helpers)

devices = sidecar_helpers.devices
