"""Loopback helpers the HTTP tests share: a free port, and waiting until a started server
listens on it."""

import os
import signal
import socket
import subprocess
import time

EXAMPLE_NGINX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                             "deploy", "nginx.conf")


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


def start_nginx(nginx, tmp, front, backs):
    """nginx with examples/deploy/nginx.conf listening on 127.0.0.1:`front` in front of the
    coordinators on `backs` (one or two ports), its files under `tmp`; returns once it listens."""
    with open(EXAMPLE_NGINX) as f:
        conf = f.read().replace("127.0.0.1:8930", f"127.0.0.1:{front}")
    for example, port in zip(("server 127.0.0.1:8931;", "server 127.0.0.1:8932;"),
                             list(backs) + [None]):
        conf = conf.replace(example, f"server 127.0.0.1:{port};" if port else "")
    prefix = os.path.join(tmp, "nginx")
    os.makedirs(prefix)
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(conf)
    proc = subprocess.Popen([nginx, "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"),
                             "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(front, proc)
    except BaseException:
        proc.kill()
        raise
    return proc


def stop_all(procs):
    """SIGTERM to each process, last started first (nginx's master takes its workers along;
    coordinators stop their children), SIGKILL after 10 s."""
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
