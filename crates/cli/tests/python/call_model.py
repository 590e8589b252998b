"""Calls a model through fal's own client (fal-client from PyPI), unchanged.

Usage: python call_model.py APP JSON_ARGUMENTS [MODE [REQUEST_ID]]
Reads FAL_RUN_HOST, FAL_QUEUE_RUN_HOST, FAL_KEY / FAL_KEY_ID + FAL_KEY_SECRET
and SSL_CERT_FILE from the environment, as any fal-client user would set
them. Prints one JSON line: {"ok": true, "result": ...} for `run` (the
default);
{"ok": true, "events": [...], "arrived_ms": [...]} for `stream` (each event's
data, and when it arrived, in milliseconds after the first);
{"ok": true, "result": ..., "updates": [STATUS...]} for `subscribe`
(fal_client.subscribe with logs; STATUS is {"type": "Queued"|"InProgress"|
"Completed", ...its fields});
{"ok": true, "request_id", "statuses": [...], "result"} for `submit`
(submit, handle.status(with_logs=True), handle.get());
{"ok": true, "request_id", "cancelled": STATUS, "get": REFUSAL} for `cancel`
(submit, wait until in progress, handle.cancel(), poll to Completed, then
handle.get(), refused);
{"ok": true, "status": STATUS, "result": ...} for `by_id` REQUEST_ID
(fal_client.status(with_logs=True) and fal_client.result);
{"ok": true, "refusals": {CALL: REFUSAL}} for `refused` REQUEST_ID (each of
submit, subscribe, status, result, cancel, each expected to fail; REFUSAL is
{"status": N, "message": "..."}); or
{"ok": false, "status": N, "message": "..."} when the server refused, or
{"ok": false, "error": TYPE, "message": "..."} when fal-client raised
something else.
"""

import dataclasses
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


def status_json(status):
    return {"type": type(status).__name__, **dataclasses.asdict(status)}


def subscribe(app, arguments):
    updates = []
    result = fal_client.subscribe(
        app,
        arguments=arguments,
        with_logs=True,
        on_queue_update=lambda s: updates.append(status_json(s)),
    )
    return {"ok": True, "result": result, "updates": updates}


def submit(app, arguments):
    handle = fal_client.submit(app, arguments=arguments)
    statuses = [status_json(handle.status(with_logs=True))]
    result = handle.get()
    statuses.append(status_json(handle.status(with_logs=True)))
    return {
        "ok": True,
        "request_id": handle.request_id,
        "statuses": statuses,
        "result": result,
    }


def refusal(call):
    try:
        call()
    except fal_client.FalClientHTTPError as exc:
        return {"status": exc.status_code, "message": exc.message}
    return {"status": None, "message": "not refused"}


def cancel(app, arguments):
    handle = fal_client.submit(app, arguments=arguments)
    deadline = time.monotonic() + 10
    while not isinstance(handle.status(), fal_client.InProgress):
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.05)
    handle.cancel()
    while not isinstance(status := handle.status(with_logs=True), fal_client.Completed):
        assert time.monotonic() < deadline, "never completed"
        time.sleep(0.05)
    return {
        "ok": True,
        "request_id": handle.request_id,
        "cancelled": status_json(status),
        "get": refusal(handle.get),
        "cancel_again": refusal(handle.cancel),
    }


def by_id(app, request_id):
    return {
        "ok": True,
        "status": status_json(fal_client.status(app, request_id, with_logs=True)),
        "result": fal_client.result(app, request_id),
    }


def refused(app, request_id):
    calls = {
        "submit": lambda: fal_client.submit(app, arguments={}),
        "subscribe": lambda: fal_client.subscribe(app, arguments={}),
        "status": lambda: fal_client.status(app, request_id, with_logs=True),
        "result": lambda: fal_client.result(app, request_id),
        "cancel": lambda: fal_client.cancel(app, request_id),
    }
    return {"ok": True, "refusals": {name: refusal(c) for name, c in calls.items()}}


def main() -> None:
    app, arguments = sys.argv[1], json.loads(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "run"
    modes = {"run": run, "stream": stream, "subscribe": subscribe, "submit": submit}
    modes.update(cancel=cancel)
    by_request = {"by_id": by_id, "refused": refused}
    try:
        if mode in by_request:
            out = by_request[mode](app, sys.argv[4])
        else:
            out = modes[mode](app, arguments)
    except fal_client.FalClientHTTPError as exc:
        out = {"ok": False, "status": exc.status_code, "message": exc.message}
    except Exception as exc:  # noqa: BLE001 - reported to the Rust test as is
        out = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
