"""Sign-in for .ci/schemathesis: the account's session as a schemathesis auth provider.

The administrator's run exercises revoking devices, among them the very device it signed in
with (`GET /admin/devices` lists it, and schemathesis reuses what responses name). A revoked
device's tokens stop working at once, and its user signs in again to use it: so does this
provider. Whenever an answer is 401 it signs in again (schemathesis's `retry_on`) and the
request is sent once more with the new token. Deactivating, re-roling or resetting the
password of the account would end it for good; the configuration points those operations at
another person (`.ci/schemathesis.toml`).

SCHEMATHESIS_USER, SCHEMATHESIS_PASSWORD and SCHEMATHESIS_BASE are set by .ci/schemathesis.
"""

import json
import os
import urllib.request

import schemathesis


def sign_in() -> str:
    user = os.environ["SCHEMATHESIS_USER"]
    body = json.dumps(
        {
            "username": user,
            "password": os.environ.get("SCHEMATHESIS_PASSWORD", "demo"),
            "device_id": f"schemathesis-{user}",
        }
    ).encode()
    request = urllib.request.Request(
        os.environ["SCHEMATHESIS_BASE"] + "/api/v1/auth/login",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


@schemathesis.auth(refresh_interval=600, retry_on=[401])
class Session:
    def get(self, case, context):
        return sign_in()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
