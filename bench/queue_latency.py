"""Helpers of bench/queue.sh (standard library only).

  recorder PORT OUT      an HTTP/1.1 upstream on 127.0.0.1:PORT: for every
                         request, appends "REQUEST_ID ARRIVAL_NS" to OUT
                         (X-Fal-Request-Id, CLOCK_REALTIME when its head was
                         read) and answers {"ok":true}; a body containing
                         "hold" is held for an hour (it occupies a server's
                         slot).
  submit URL AUTH N OUT  submits N requests to URL (POST, one at a time on one
                         keep-alive connection, 20-40 ms apart so none waits
                         behind another) and appends "REQUEST_ID SENT_NS" to
                         OUT, SENT_NS taken just before the request is sent.
  hold URL AUTH          submits one {"hold": true} request.
  report SENT ARRIVED    prints p50, p90, p99 and max of ARRIVAL - SENT in ms,
                         and how many of the sent never arrived.
"""

import http.client
import http.server
import json
import random
import sys
import time
import urllib.parse


def recorder(port, out):
    log = open(out, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            at = time.time_ns()
            rid = self.headers.get("x-fal-request-id", "-")
            log.write(f"{rid} {at}\n")
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if b"hold" in body:
                time.sleep(3600)
            answer = b'{"ok":true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    server.serve_forever()


def post(conn, path, auth, body):
    conn.request("POST", path, body=body,
                 headers={"authorization": auth, "content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"submit answered {r.status}: {data[:200]!r}")
    return json.loads(data)["request_id"]


def submit(url, auth, n, out):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    with open(out, "a", buffering=1) as log:
        for i in range(int(n)):
            sent = time.time_ns()
            rid = post(conn, u.path, auth, json.dumps({"i": i}))
            log.write(f"{rid} {sent}\n")
            time.sleep(random.uniform(0.02, 0.04))


def hold(url, auth):
    u = urllib.parse.urlsplit(url)
    post(http.client.HTTPConnection(u.hostname, u.port), u.path, auth, '{"hold": true}')


def report(sent_file, arrived_file):
    arrived = {}
    for line in open(arrived_file):
        rid, at = line.split()
        arrived.setdefault(rid, int(at))
    ms, missing = [], 0
    for line in open(sent_file):
        rid, sent = line.split()
        if rid in arrived:
            ms.append((arrived[rid] - int(sent)) / 1e6)
        else:
            missing += 1
    ms.sort()
    if not ms:
        sys.exit("no request arrived")
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    print(f"{pick(0.5):.2f} {pick(0.9):.2f} {pick(0.99):.2f} {ms[-1]:.2f} {len(ms)} {missing}")


if __name__ == "__main__":
    {"recorder": recorder, "submit": submit, "hold": hold, "report": report}[sys.argv[1]](*sys.argv[2:])
