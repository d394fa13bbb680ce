# The phone's sync loop in its own process: opens the database with the agent (ctypes) and
# syncs once every INTERVAL seconds with PEER_URL, as a client only, until killed or told to stop.
# Usage: phone_sync.py DB KEY_FILE PEER_URL INTERVAL [ROUNDS]
# Prints "start N" before and a JSON line (or "error CODE MESSAGE") after each sync_once.
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent import Agent, AgentError  # noqa: E402

db, key_file, url, interval = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else None
a = Agent(db, Path(key_file).read_bytes())
n = 0
while rounds is None or n < rounds:
    n += 1
    print(f"start {n}", flush=True)
    try:
        print(json.dumps(a.sync_once(url)), flush=True)
    except AgentError as e:
        print(f"error {e.code} {e.message}", flush=True)
    time.sleep(interval)
a.close()
