"""Idle connections against a running `fal serve`, for bench/idle.sh.

Opens COUNT keep-alive connections to HOST:PORT, sends one request on each
(GET PATH with the Authorization header AUTH) and reads its whole answer,
then leaves them idle; then closes them all. Reads the server's resident
memory (VmRSS of PID, from /proc) before, while they are idle, and SETTLE
seconds after they close, and prints the three figures as key=value lines.

Usage: python3 idle_client.py PID HOST PORT COUNT PATH AUTH SETTLE [tls]
"""

import socket
import ssl
import sys
import time


def rss_kb(pid):
    """The process's resident set (VmRSS), in KB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_answer(sock):
    """Reads one HTTP/1.1 answer with a content-length; returns its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("closed inside an answer")
        body += chunk
    return int(head.split(b" ")[1])


def main():
    pid, host, port, count, path, auth, settle = sys.argv[1:8]
    port, count, settle = int(port), int(count), float(settle)
    tls = len(sys.argv) > 8 and sys.argv[8] == "tls"
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n\r\n"
    ).encode()

    def connect():
        s = socket.create_connection((host, port))
        return ctx.wrap_socket(s, server_hostname=host) if ctx else s

    # One call first, so that caches, pools and threads are all warm.
    warm = connect()
    warm.sendall(request)
    assert read_answer(warm) == 200, "the warm-up call failed"
    warm.close()
    time.sleep(settle)
    before = rss_kb(pid)

    conns = []
    for _ in range(count):
        s = connect()
        s.sendall(request)
        status = read_answer(s)
        if status != 200:
            raise RuntimeError(f"answer {status}")
        conns.append(s)
    # Past the server's grace (1 s) before it gives a quiet connection's
    # buffers back, and the allocator's delay before it returns them.
    time.sleep(settle)
    idle = rss_kb(pid)

    for s in conns:
        s.close()
    time.sleep(settle)
    after = rss_kb(pid)
    print(f"before_kb={before}")
    print(f"idle_kb={idle}")
    print(f"after_kb={after}")


if __name__ == "__main__":
    main()
