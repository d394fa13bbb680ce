# Settle a conflict on a paired device's sidecar, signed with this device's own key.
# python resolve_conflict.py URL DEVICE_ID KEY_FILE CONFLICT_ID CHOICE
import json
import sys

import requests
import requests_http_signature as rhs  # pip install requests-http-signature==2.0.0


def resolve(url, device_id, key_file, conflict_id, choice):
    auth = rhs.HTTPSignatureAuth(
        signature_algorithm=rhs.algorithms.ED25519,
        key=open(key_file, "rb").read(),  # this device's key file (`peersync init` prints it)
        key_id=device_id,                 # this device's id (`peersync id`)
        use_nonce=True,                   # required: without a nonce the answer is a 401
    )
    r = requests.post(f"{url}/conflicts/{conflict_id}/resolve", json={"choice": choice}, auth=auth, timeout=10)
    r.raise_for_status()
    return r.json()  # {"id", "status", "conflict"}


if __name__ == "__main__":
    url, device_id, key_file, conflict_id, choice = sys.argv[1:6]
    if choice.startswith("{"):
        choice = json.loads(choice)  # a row: {"body": "merged"}
    print(json.dumps(resolve(url, device_id, key_file, int(conflict_id), choice)))
