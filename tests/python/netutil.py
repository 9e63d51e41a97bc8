"""Loopback helpers the HTTP tests share: a free port, and waiting until a started server
listens on it."""

import socket
import time


def free_port():
    """A port on 127.0.0.1 nothing listens on (now)."""
    return free_ports(1)[0]


def free_ports(n):
    """`n` distinct ports on 127.0.0.1 nothing listens on (now): all are held while they
    are picked, so no two are the same."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_listening(port, proc, within=30):
    """Returns once 127.0.0.1:`port` accepts connections; fails if `proc` exits first or
    `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)
