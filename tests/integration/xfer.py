#!/usr/bin/env python3
"""Transfer test application for the netns integration tests.

server: python3 xfer.py serve [--mptcp] [--host ADDR] --port P [--log FILE]
  Accepts connections (IPPROTO_MPTCP=262 with --mptcp, else plain TCP). Per
  connection it reads one line:
    UP n          -> reads n bytes, answers "OK <sha256>\n"
    DOWN n seed   -> sends n bytes of the seeded stream, then closes
    ECHO          -> answers "PEER <addr> <port>\n" (what the server sees)
  With --log, each accepted peer address is appended to the file.

client: python3 xfer.py up|down|echo HOST PORT [n] [seed] [--count K] [--timeout S]
  Plain TCP. Verifies: for up, the server's sha256 equals the sent data's;
  for down, the received bytes' sha256 equals the expected stream's. Prints
  one JSON line of results and exits 0 only when every check passed.
"""
import hashlib, json, random, socket, sys, threading, time

IPPROTO_MPTCP = 262
CHUNK = 1 << 16

def stream(n, seed):
    r = random.Random(seed)
    left = n
    while left > 0:
        k = min(left, 1 << 20)
        yield r.randbytes(k)
        left -= k

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        buf += b
    return buf.decode().strip()

def plain(addr):
    return addr[7:] if addr.startswith("::ffff:") else addr

def handle(conn, peer, logf):
    peer = (plain(peer[0]), peer[1])
    try:
        if logf:
            with open(logf, "a") as f:
                f.write("%s %d\n" % (peer[0], peer[1]))
        line = recv_line(conn).split()
        if not line:
            return
        if line[0] == "UP":
            n = int(line[1]); h = hashlib.sha256(); got = 0
            while got < n:
                b = conn.recv(min(CHUNK, n - got))
                if not b:
                    break
                h.update(b); got += len(b)
            conn.sendall(("OK %s %d\n" % (h.hexdigest(), got)).encode())
        elif line[0] == "DOWN":
            for part in stream(int(line[1]), int(line[2])):
                conn.sendall(part)
        elif line[0] == "ECHO":
            conn.sendall(("PEER %s %d\n" % (peer[0], peer[1])).encode())
        conn.shutdown(socket.SHUT_WR)
        # Wait for the client's close so our FIN is not followed by a RST.
        conn.settimeout(30)
        while conn.recv(CHUNK):
            pass
    except OSError:
        pass
    finally:
        conn.close()

def serve(args):
    mptcp = "--mptcp" in args
    host = args[args.index("--host") + 1] if "--host" in args else "::"
    port = int(args[args.index("--port") + 1])
    logf = args[args.index("--log") + 1] if "--log" in args else None
    fam = family(host)
    s = socket.socket(fam, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((host, port))
    s.listen(256)
    print("listening", flush=True)
    while True:
        c, peer = s.accept()
        threading.Thread(target=handle, args=(c, peer, logf), daemon=True).start()

def client(args):
    opts = [a for a in args]
    timeout = float(opts[opts.index("--timeout") + 1]) if "--timeout" in opts else 120
    count = int(opts[opts.index("--count") + 1]) if "--count" in opts else 1
    pos = [a for i, a in enumerate(opts) if not a.startswith("--") and (i == 0 or not opts[i - 1] in ("--timeout", "--count"))]
    mode, host, port = pos[0], pos[1], int(pos[2])
    n = int(pos[3]) if len(pos) > 3 else 0
    seed = int(pos[4]) if len(pos) > 4 else 1
    results = []
    ok_all = True
    t_start = time.time()
    for i in range(count):
        res = {"mode": mode, "bytes": n}
        t0 = time.time()
        try:
            s = socket.create_connection((host, port), timeout=timeout)
            res["connect_ms"] = round((time.time() - t0) * 1000, 3)
            if mode == "up":
                s.sendall(("UP %d\n" % n).encode())
                h = hashlib.sha256()
                for part in stream(n, seed):
                    s.sendall(part); h.update(part)
                ans = recv_line(s).split()
                res["sha256"] = h.hexdigest()
                res["server_sha256"] = ans[1] if len(ans) > 1 else None
                res["ok"] = len(ans) == 3 and ans[0] == "OK" and ans[1] == h.hexdigest() and int(ans[2]) == n
            elif mode == "down":
                s.sendall(("DOWN %d %d\n" % (n, seed)).encode())
                h = hashlib.sha256(); got = 0
                while True:
                    b = s.recv(CHUNK)
                    if not b:
                        break
                    h.update(b); got += len(b)
                e = hashlib.sha256()
                for part in stream(n, seed):
                    e.update(part)
                res.update({"received": got, "sha256": h.hexdigest(), "expected_sha256": e.hexdigest()})
                res["ok"] = got == n and h.hexdigest() == e.hexdigest()
            elif mode == "echo":
                s.sendall(b"ECHO\n")
                ans = recv_line(s).split()
                me = s.getsockname()
                res.update({"server_saw": ans[1:] if ans else None, "client": [me[0], me[1]]})
                res["ok"] = len(ans) == 3 and ans[1] == me[0] and int(ans[2]) == me[1]
            s.close()
        except OSError as ex:
            res["ok"] = False
            res["error"] = str(ex)
        res["seconds"] = round(time.time() - t0, 3)
        if n and res.get("ok"):
            res["mbit_s"] = round(n * 8 / 1e6 / max(res["seconds"], 1e-6), 1)
        ok_all = ok_all and res["ok"]
        results.append(res)
    if count == 1:
        print(json.dumps(results[0]))
    else:
        print(json.dumps({"mode": mode, "count": count, "ok": ok_all,
                          "completed": sum(1 for r in results if r["ok"]),
                          "seconds": round(time.time() - t_start, 3),
                          "failures": [r for r in results if not r["ok"]][:5]}))
    sys.exit(0 if ok_all else 1)

if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__); sys.exit(2)
    if sys.argv[1] == "serve":
        serve(sys.argv[2:])
    else:
        client(sys.argv[1:])
