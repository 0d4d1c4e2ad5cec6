#!/usr/bin/env python3
"""TCP Fast Open peers for interop.sh.

server: tfo.py serve PORT            kernel MPTCP listener with TCP_FASTOPEN;
        each connection: reads a line "DOWN n seed", sends n bytes of the
        seeded stream (xfer.py's), closes; prints one JSON line per connection.
client: tfo.py get HOST PORT n seed  plain TCP with MSG_FASTOPEN (the request
        travels in the SYN once the client holds a cookie); checks the
        stream's sha256; prints JSON; exit 0 only if it matched.
"""
import hashlib, json, os, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xfer import IPPROTO_MPTCP, stream  # the same seeded stream as the transfers

MSG_FASTOPEN = 0x20000000

def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        c, peer = s.accept()
        line = b""
        while not line.endswith(b"\n"):
            b = c.recv(100)
            if not b:
                break
            line += b
        parts = line.split()
        if len(parts) == 3 and parts[0] == b"DOWN":
            for part in stream(int(parts[1]), int(parts[2])):
                c.sendall(part)
        print(json.dumps({"peer": peer[0], "request": line.decode(errors="replace").strip()}), flush=True)
        c.close()

def get(host, port, n, seed):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t0 = time.time()
    # Blocking (a Python timeout makes the socket non-blocking, and a
    # non-blocking MSG_FASTOPEN without a cookie answers EINPROGRESS).
    s.sendto(f"DOWN {n} {seed}\n".encode(), MSG_FASTOPEN, (host, port))
    s.settimeout(60)
    h = hashlib.sha256(); got = 0
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        h.update(b); got += len(b)
    want = hashlib.sha256()
    for part in stream(n, seed):
        want.update(part)
    ok = got == n and h.hexdigest() == want.hexdigest()
    print(json.dumps({"ok": ok, "bytes": got, "seconds": round(time.time() - t0, 3), "local": list(s.getsockname())}))
    return 0 if ok else 1

if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(get(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
