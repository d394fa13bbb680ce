# The reliability suite's fixtures: the sidecar suite's helpers, plus the `reliability` recorder behind RELIABILITY.md.
import importlib.util
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_spec = importlib.util.spec_from_file_location("sidecar_helpers", HERE.parent / "sidecar" / "conftest.py")
sidecar_helpers = importlib.util.module_from_spec(_spec)
sys.modules["sidecar_helpers"] = sidecar_helpers
_spec.loader.exec_module(sidecar_helpers)

# Re-exported so tests here can `from sidecar_helpers import Device, pair, ...` or use the fixture.
devices = sidecar_helpers.devices

import report  # noqa: E402

LONG = os.environ.get("PEERSYNC_LONG") == "1"


@pytest.fixture
def reliability(request):
    """Records one row of the matrix: `reliability.record(area, figures={...}, what="...")`.
    The row's result is the test's outcome (pass/fail), filled in after the test."""
    rec = report.Recorder(request.node.nodeid)
    yield rec
    report.ROWS.extend(rec.rows)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        report.OUTCOMES[item.nodeid] = (rep.outcome, str(rep.longrepr)[-300:] if rep.failed else "")


def pytest_sessionfinish(session, exitstatus):
    report.write(long=LONG)
