#!/usr/bin/env python3
"""A small HTTP/1.1 keep-alive server for the benchmarks (D's port 8080).

python3 bench/httpd.py [--host ADDR] [--port P] [--mptcp] [--body-bytes N]

Every GET (any path) is answered "200 OK" with the same fixed body of N bytes
(default 100), Content-Length set, connection kept open unless the client asks
for "Connection: close" (or speaks HTTP/1.0 without keep-alive). HEAD gives the
headers only. One thread per connection. With --mptcp the listening socket is
IPPROTO_MPTCP (262), so an MPTCP client gets MPTCP and a plain one falls back to
TCP. Prints "listening" once the socket listens; logs nothing per request.
"""
import http.server, socket, socketserver, sys

IPPROTO_MPTCP = 262


def opt(name, default):
    a = sys.argv[1:]
    return a[a.index(name) + 1] if name in a else default


HOST = opt("--host", "0.0.0.0")
PORT = int(opt("--port", "8080"))
MPTCP = "--mptcp" in sys.argv[1:]
BODY = (b"0123456789abcdef" * ((int(opt("--body-bytes", "100")) + 15) // 16))[:int(opt("--body-bytes", "100"))]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bench-httpd/1"
    sys_version = ""
    disable_nagle_algorithm = True

    def _answer(self, body):
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                % (len(BODY), "Connection: close\r\n" if self.close_connection else ""))
        self.wfile.write(head.encode() + (BODY if body else b""))  # one write: one segment

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    address_family = socket.AF_INET6 if ":" in HOST else socket.AF_INET

    def __init__(self, addr, handler):
        super().__init__(addr, handler, bind_and_activate=False)
        if MPTCP:
            self.socket.close()
            self.socket = socket.socket(self.address_family, self.socket_type, IPPROTO_MPTCP)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise


if __name__ == "__main__":
    srv = Server((HOST, PORT), Handler)
    print("listening %s %d%s" % (HOST, PORT, " mptcp" if MPTCP else ""), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
