"""Calls a model through fal's own client (fal-client from PyPI), unchanged.

Usage: python call_model.py APP JSON_ARGUMENTS
Reads FAL_RUN_HOST, FAL_KEY / FAL_KEY_ID + FAL_KEY_SECRET and SSL_CERT_FILE
from the environment, as any fal-client user would set them. Prints one JSON
line: {"ok": true, "result": ...} or {"ok": false, "status": N, "message": "..."}.
"""

import json
import sys

import fal_client


def main() -> None:
    app, arguments = sys.argv[1], json.loads(sys.argv[2])
    try:
        result = fal_client.run(app, arguments=arguments)
    except fal_client.FalClientHTTPError as exc:
        print(json.dumps({"ok": False, "status": exc.status_code, "message": exc.message}))
        return
    print(json.dumps({"ok": True, "result": result}))


if __name__ == "__main__":
    main()
