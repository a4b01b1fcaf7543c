#!/usr/bin/env python3
"""Memory per connection of a running HTTP server, from its RSS.

conn_memory.py NAME HOST PORT PID [N]: opens N (default 1000) keep-alive
connections to HOST:PORT, reads the server's VmRSS (PID) before, with the
connections idle, and after one request on each; prints a RESULT line with
bytes per connection. Loopback only; every socket is closed at the end.
"""
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def main():
    name, host, port, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    if not host.startswith("127."):
        raise SystemExit("loopback only")
    time.sleep(0.5)
    base = rss_kb(pid)
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(n)]
    time.sleep(1)
    idle = rss_kb(pid)
    for s in socks:
        s.sendall(b"GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\n\r\n")
    for s in socks:
        s.recv(65536)
    time.sleep(1)
    after = rss_kb(pid)
    for s in socks:
        s.close()
    per = lambda kb: (kb - base) * 1024 / n
    print(f"RESULT case={name} conns={n} idle_bytes_per_conn={per(idle):.0f} "
          f"after_request_bytes_per_conn={per(after):.0f} rss_base_kb={base}")


main()
