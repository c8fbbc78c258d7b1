#!/usr/bin/python3
"""Long-lived test client: ADDR PORT COUNT (0 = forever). Sends "line N\\n" every 200 ms and
waits for the echo (3 s). Prints "echo N <unix time>" per echo; at the end "done <unix time>"
(exit 0) after COUNT lines and a clean close, "closed eof|reset <unix time>" (exit 3) if the
connection ends under it, "timeout N" (exit 4) if an echo does not come back, "refused" (exit 2)
if the connect fails."""
import socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def out(*a):
    print(*a, flush=True)
try:
    s = socket.create_connection((host, port), timeout=5)
except OSError as e:
    out("refused", e); sys.exit(2)
out("connected")
i = 0
while count == 0 or i < count:
    i += 1
    msg = b"line %d\n" % i
    got = b""
    try:
        s.sendall(msg)
        s.settimeout(3)
        while not got.endswith(b"\n"):
            d = s.recv(4096)
            if not d:
                out("closed eof %.3f" % time.time()); sys.exit(3)
            got += d
    except socket.timeout:
        out("timeout %d" % i); sys.exit(4)
    except OSError as e:
        out("closed reset %.3f %s" % (time.time(), e)); sys.exit(3)
    if got != msg:
        out("mismatch %r" % got); sys.exit(5)
    out("echo %d %.3f" % (i, time.time()))
    time.sleep(0.2)
s.shutdown(socket.SHUT_WR)
s.settimeout(3)
try:
    rest = s.recv(4096)
except OSError as e:
    out("closed reset %.3f %s" % (time.time(), e)); sys.exit(3)
out("done %.3f" % time.time() if rest == b"" else "extra %r" % rest)
sys.exit(0 if rest == b"" else 5)
