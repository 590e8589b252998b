"""Calls a model through fal's own client (fal-client from PyPI), unchanged.

Usage: python call_model.py APP JSON_ARGUMENTS [run|stream]
Reads FAL_RUN_HOST, FAL_KEY / FAL_KEY_ID + FAL_KEY_SECRET and SSL_CERT_FILE
from the environment, as any fal-client user would set them. Prints one JSON
line: {"ok": true, "result": ...} for `run` (the default);
{"ok": true, "events": [...], "arrived_ms": [...]} for `stream` (each event's
data, and when it arrived, in milliseconds after the first); or
{"ok": false, "status": N, "message": "..."} when the server refused, or
{"ok": false, "error": TYPE, "message": "..."} when fal-client raised
something else.
"""

import json
import sys
import time

import fal_client


def run(app, arguments):
    return {"ok": True, "result": fal_client.run(app, arguments=arguments)}


def stream(app, arguments):
    events, arrived = [], []
    for event in fal_client.stream(app, arguments=arguments):
        arrived.append(time.monotonic())
        events.append(event)
    first = arrived[0] if arrived else 0.0
    return {
        "ok": True,
        "events": events,
        "arrived_ms": [round((t - first) * 1000) for t in arrived],
    }


def main() -> None:
    app, arguments = sys.argv[1], json.loads(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "run"
    call = {"run": run, "stream": stream}[mode]
    try:
        out = call(app, arguments)
    except fal_client.FalClientHTTPError as exc:
        out = {"ok": False, "status": exc.status_code, "message": exc.message}
    except Exception as exc:  # noqa: BLE001 - reported to the Rust test as is
        out = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
