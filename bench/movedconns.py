#!/usr/bin/env python3
"""Connections that move data, then stay open and idle (memory checks).

  movedconns.py serve PORT [--mptcp]
      Per connection (a thread each): reads "MOVE n\\n", then n bytes, then
      sends n bytes back, then holds the connection until the peer closes it.
  movedconns.py hold HOST PORT N BYTES [--mptcp]
      Opens N connections one after another; on each sends "MOVE BYTES\\n"
      and BYTES bytes, and reads BYTES bytes back (so BYTES went each way),
      then keeps it open. Prints one JSON line
        {"opened": k, "moved_each_way": BYTES, "seconds": t, "error": ...}
      then "READY" (flushed), and holds them until SIGTERM or SIGINT, then
      closes them all.
Exit status 0 when every connection moved its bytes both ways.
"""
import json, signal, socket, sys, threading, time

IPPROTO_MPTCP = 262
CHUNK = 1 << 16


def recv_exact(s, n):
    got = 0
    while got < n:
        b = s.recv(min(CHUNK, n - got))
        if not b:
            raise OSError("connection closed after %d of %d bytes" % (got, n))
        got += len(b)


def send_n(s, n):
    block = bytes(range(256)) * (CHUNK // 256)
    left = n
    while left > 0:
        k = min(left, CHUNK)
        s.sendall(block[:k])
        left -= k


def handle(c):
    try:
        line = b""
        while not line.endswith(b"\n"):
            b = c.recv(1)
            if not b:
                return
            line += b
        n = int(line.split()[1])
        recv_exact(c, n)
        send_n(c, n)
        while c.recv(CHUNK):
            pass
    except OSError:
        pass
    finally:
        c.close()


def serve(port, mptcp):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1024)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def hold(host, port, n, size, mptcp):
    socks, err, t0 = [], None, time.time()
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
            s.settimeout(60)
            s.connect((host, port))
            s.sendall(b"MOVE %d\n" % size)
            send_n(s, size)
            recv_exact(s, size)
            socks.append(s)
    except OSError as e:
        err = str(e)
    print(json.dumps({"opened": len(socks), "moved_each_way": size, "seconds": round(time.time() - t0, 3), "error": err}))
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    for s in socks:
        s.close()
    return 0 if err is None and len(socks) == n else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    mp = "--mptcp" in a
    a = [x for x in a if x != "--mptcp"]
    if a and a[0] == "serve":
        serve(int(a[1]), mp)
    elif a and a[0] == "hold" and len(a) == 5:
        sys.exit(hold(a[1], int(a[2]), int(a[3]), int(a[4]), mp))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
