#!/usr/bin/env python3
"""A transfer that checks every byte as it arrives, for tests where a
connection may end early (netns/crash.sh): xfer.py checks a
sha256 at the end, which says nothing about the bytes an application got
before a reset. Here the receiver compares each byte with the seeded stream
as it comes and reports the offset of the first wrong one, however the
connection ends.

server: python3 verify.py serve --port P [--mptcp] --log FILE
  Per connection one line: "UP n seed" (the client sends n bytes of the
  stream: compared as they come) or "DOWN n seed" (the server sends them).
  After an upload it answers "OK <received> <first mismatch or -1>\n", and
  appends a JSON line to FILE either way: peer, received, first_mismatch,
  end ("complete", "eof" before n bytes, or the error).
client: python3 verify.py up|down HOST PORT n seed [--mptcp] [--timeout S]
  Prints one JSON line: received (down) or sent (up), first_mismatch (down;
  null when every byte received was right), end, seconds; for up, the
  server's answer. Exit status 0 only when the whole transfer completed
  and every byte was right.

The stream is xfer.py's: random.Random(seed).randbytes in 1 MiB pieces.
"""
import json, os, random, socket, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xfer import recv_line  # the transfers' own line reader

IPPROTO_MPTCP = 262
PIECE = 1 << 20


class Stream:
    """The seeded stream, read in order, compared piecewise."""
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.buf = b""
        self.pos = 0      # stream offset of buf[0]
        self.checked = 0  # bytes compared so far
        self.first_mismatch = None

    def _need(self, end):
        while self.pos + len(self.buf) < end:
            self.buf = self.buf[self.checked - self.pos:] + self.r.randbytes(PIECE)
            self.pos = self.checked

    def compare(self, data):
        if self.first_mismatch is None:
            self._need(self.checked + len(data))
            off = self.checked - self.pos
            exp = self.buf[off:off + len(data)]
            if exp != data:
                i = next(k for k in range(len(data)) if data[k] != exp[k])
                self.first_mismatch = self.checked + i
        self.checked += len(data)

    def take(self, n):
        self._need(self.checked + n)
        off = self.checked - self.pos
        out = self.buf[off:off + n]
        self.checked += n
        return out


def handle(conn, peer, logf):
    rec = {"peer": list(peer[:2]), "received": 0, "first_mismatch": None, "end": None}
    try:
        words = recv_line(conn).split()
        if len(words) != 3:
            return
        what, n, seed = words[0], int(words[1]), int(words[2])
        rec["op"] = what
        st = Stream(seed)
        if what == "UP":
            while st.checked < n:
                b = conn.recv(min(65536, n - st.checked))
                if not b:
                    rec["end"] = "eof"
                    break
                st.compare(b)
            rec["received"] = st.checked
            rec["first_mismatch"] = st.first_mismatch
            if st.checked == n:
                rec["end"] = "complete"
                conn.sendall(("OK %d %d\n" % (st.checked, -1 if st.first_mismatch is None else st.first_mismatch)).encode())
        elif what == "DOWN":
            while st.checked < n:
                conn.sendall(st.take(min(65536, n - st.checked)))
            rec["end"] = "complete"
            rec["received"] = n
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(30)
        while conn.recv(65536):
            pass
    except OSError as e:
        rec["end"] = rec["end"] or "error: %s" % e
        if rec.get("op") == "UP":
            rec["received"] = st.checked
            rec["first_mismatch"] = st.first_mismatch
    finally:
        conn.close()
        rec["t_end"] = time.time()
        if logf and rec.get("op"):
            with open(logf, "a") as f:
                f.write(json.dumps(rec) + "\n")


def serve(args):
    port = int(args[args.index("--port") + 1])
    logf = args[args.index("--log") + 1] if "--log" in args else None
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, IPPROTO_MPTCP if "--mptcp" in args else 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(64)
    print("listening", flush=True)
    while True:
        c, peer = s.accept()
        p = (peer[0][7:] if peer[0].startswith("::ffff:") else peer[0], peer[1])
        threading.Thread(target=handle, args=(c, p, logf), daemon=True).start()


def client(args):
    mode, host, port, n, seed = args[0], args[1], int(args[2]), int(args[3]), int(args[4])
    timeout = float(args[args.index("--timeout") + 1]) if "--timeout" in args else 60
    res = {"mode": mode, "bytes": n, "first_mismatch": None, "end": None}
    t0 = time.time()
    st = Stream(seed)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if "--mptcp" in args else 0)
        s.settimeout(timeout)
        s.connect((host, port))
        res["local"] = list(s.getsockname()[:2])
        if mode == "down":
            s.sendall(("DOWN %d %d\n" % (n, seed)).encode())
            while True:
                b = s.recv(65536)
                if not b:
                    break
                st.compare(b)
            res["end"] = "complete" if st.checked == n else "eof"
        else:
            s.sendall(("UP %d %d\n" % (n, seed)).encode())
            while st.checked < n:
                s.sendall(st.take(min(65536, n - st.checked)))
            ans = recv_line(s).split()
            res["server"] = ans
            res["end"] = "complete" if len(ans) == 3 and ans[0] == "OK" and int(ans[1]) == n and ans[2] == "-1" else "bad answer"
        s.close()
    except OSError as e:
        res["end"] = "error: %s" % e
    res["received" if mode == "down" else "sent"] = st.checked
    res["first_mismatch"] = st.first_mismatch
    res["seconds"] = round(time.time() - t0, 3)
    ok = res["end"] == "complete" and st.first_mismatch is None
    res["ok"] = ok
    print(json.dumps(res), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__); sys.exit(2)
    sys.exit(serve(sys.argv[2:]) if sys.argv[1] == "serve" else client(sys.argv[1:]))
