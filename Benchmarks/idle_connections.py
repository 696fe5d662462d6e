#!/usr/bin/env python3
"""Opens N idle keep-alive connections to a server (each sends one request first), holds them
for S seconds while other load runs, then checks every one still answers.

Usage: python3 Benchmarks/idle_connections.py PORT N SECONDS
"""
import resource
import socket
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    conns.append(s)
for s in conns:
    assert b"200 OK" in s.recv(4096)
print(f"{n} keep-alive connections open", flush=True)
time.sleep(hold)
alive = 0
for s in conns:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    if b"200 OK" in s.recv(4096):
        alive += 1
print(f"after {hold:.0f} s: {alive} of {n} still answer")
