# The C ABI from C: agent/tests/c/agent_test.c, built by `make agent` against peersync.h and the static library, run against a real sidecar on loopback.
import subprocess

from sidecar_helpers import ROOT, free_port, pair, table_rows

C_TEST = ROOT / "target" / "agent-c" / "agent_test"


def test_c_program_syncs_with_a_sidecar_and_reports_errors(devices):
    assert C_TEST.exists(), f"{C_TEST} is missing: run `make agent`"
    laptop, phone = devices("laptop"), devices("phone")
    pair(laptop, phone)
    laptop.track()
    phone.track()
    laptop.sql("INSERT INTO notes VALUES ('l1', 'from the laptop', 1)")
    phone.sql("INSERT INTO notes VALUES ('p1', 'from the phone', 2)")
    laptop.serve("127.0.0.1", free_port())
    dead = f"http://127.0.0.1:{free_port()}"
    r = subprocess.run([str(C_TEST), str(phone.db), str(phone.key_file), laptop.url, dead],
                       capture_output=True, text=True, timeout=120)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout
    assert table_rows(phone.db) == table_rows(laptop.db) == [("l1", "from the laptop", 1), ("p1", "from the phone", 2)]
