#!/usr/bin/env bash
# The Istio CA client (agent/ca on agent/grpc) against a real grpcio CA and broken servers, built
# with ASan/UBSan: certificates over h2c and TLS that verify against the returned root, bearer
# token / clusterid / ImpersonatedIdentity sent, an intermediate bundled in one chain element,
# refusals (PERMISSION_DENIED, bad token, wrong identity, wrong key, no root, untrusted server),
# and broken servers (garbage, HTTP/1, truncated, not gRPC, huge, reset, silent) -> clean errors.
set -u
TB_NEED_AGENT=0
. "$(dirname "$0")/lib.sh"
tb_init
[ -f "$TBDIR/ca.pem" ] || tb_skip "no test CA ($ZT ca-init)"
"$PY" -c 'import grpc, grpc_tools, cryptography, h2' 2>/dev/null || tb_skip "python grpc/h2 missing"

# The client under test: ca_tool_main from the sources, with sanitizers (leaks fail too).
cat >"$TBDIR/driver.c" <<'EOF'
#include "ztunnel/ca.h"
int main(int argc, char **argv) { return ca_tool_main(argc - 1, argv + 1); }
EOF
GEN=$TB_ROOT/build/gen
[ -f "$GEN/ca.pb-c.c" ] || tb_skip "$GEN/ca.pb-c.c missing (make all)"
(cd "$TB_ROOT" && cc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -g -O1 \
	-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-Iinclude -I"$GEN" -o "$TBDIR/ca-fetch" "$TBDIR/driver.c" agent/ca/*.c agent/grpc/*.c \
	agent/tls/*.c agent/io/buf.c "$GEN/ca.pb-c.c" "$GEN/google_struct.pb-c.c" \
	-lssl -lcrypto -lnghttp2 -lprotobuf-c) >"$TBDIR/build.log" 2>&1 ||
	tb_fail "building the ca-fetch driver: $(tail -20 "$TBDIR/build.log")"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1

mkdir -p "$TBDIR/py"
(cd "$TB_ROOT" && "$PY" -m grpc_tools.protoc -I proto --python_out="$TBDIR/py" \
	--grpc_python_out="$TBDIR/py" proto/ca.proto proto/google_struct.proto) ||
	tb_fail "generating python stubs"

tb_node cp 1
ID=spiffe://cluster.local/ns/default/sa/app
echo "  tok-123  " >"$TBDIR/token"
echo "wrong" >"$TBDIR/badtoken"
tb_ca other

ca() {	# PORT MODE [extra args]
	local port=$1 mode=$2; shift 2
	tb_bg cp "$PY" "$TB_ROOT/tests/e2e/cp/ca_server.py" --stubs "$TBDIR/py" \
		--ca-cert "$TBDIR/ca.pem" --ca-key "$TBDIR/ca.key" --listen "127.0.0.1:$port" \
		--token tok-123 --mode "$mode" "$@" >"$TBDIR/ca-$port.log" 2>&1
}
ca 15010 ok
ca 15012 ok --tls
ca 15013 bundle
ca 15014 deny
ca 15015 wrong-identity
ca 15016 wrong-key
ca 15017 leaf-only
tb_bg cp "$PY" "$TB_ROOT/tests/e2e/cp/grpc_broken.py" --base-port 16000 \
	>"$TBDIR/broken.log" 2>&1
for p in 15010 15012 15013 15014 15015 15016 15017 16011; do tb_wait_port cp $p; done

N=0
# fetch NAME ADDRESS [options]: runs ca-fetch; rc in FRC, stderr in $TBDIR/NAME.err.
fetch() {
	local name=$1 addr=$2; shift 2
	N=$((N + 1))
	tb_exec cp timeout 30 "$TBDIR/ca-fetch" ca-fetch --token "$TBDIR/token" "$@" "$addr" "$ID" \
		"$TBDIR/$name.pem" "$TBDIR/$name.key" "$TBDIR/$name.root" \
		>"$TBDIR/$name.out" 2>"$TBDIR/$name.err"
	FRC=$?
	if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' "$TBDIR/$name.err"; then
		cat "$TBDIR/$name.err" >&2
		tb_fail "$name: sanitizer report"
	fi
}
# refused NAME PATTERN ADDRESS [options]: the fetch fails with exit 1 and stderr matching.
refused() {
	local name=$1 pat=$2; shift 2
	fetch "$name" "$@"
	[ "$FRC" = 1 ] || tb_fail "$name: exit $FRC, want 1 ($(cat "$TBDIR/$name.err"))"
	grep -Eq -- "$pat" "$TBDIR/$name.err" ||
		tb_fail "$name: error '$(cat "$TBDIR/$name.err")' does not match /$pat/"
	tb_log "ok: $name -> $(head -c 300 "$TBDIR/$name.err")"
}
san_of() { openssl x509 -in "$1" -noout -ext subjectAltName | tail -1 | tr -d ' '; }
issued() {	# NAME: the files verify: leaf -> root, identity, key matches, root = the test CA
	local n=$1
	[ "$FRC" = 0 ] || tb_fail "$n: exit $FRC: $(cat "$TBDIR/$n.err")"
	openssl verify -CAfile "$TBDIR/$n.root" -untrusted "$TBDIR/$n.pem" "$TBDIR/$n.pem" \
		>/dev/null || tb_fail "$n: the leaf does not verify against the returned root"
	[ "$(san_of "$TBDIR/$n.pem")" = "URI:$ID" ] || tb_fail "$n: SAN $(san_of "$TBDIR/$n.pem")"
	[ "$(openssl x509 -in "$TBDIR/$n.pem" -noout -pubkey | sha256sum)" = \
	  "$(openssl pkey -in "$TBDIR/$n.key" -pubout | sha256sum)" ] || tb_fail "$n: key mismatch"
	cmp -s <(openssl x509 -in "$TBDIR/$n.root" -outform DER) \
		<(openssl x509 -in "$TBDIR/ca.pem" -outform DER) || tb_fail "$n: root is not the CA"
	tb_log "ok: $n issued: $(cat "$TBDIR/$n.out")"
}

# 1. h2c: a certificate for the requested identity; the CA saw the token, cluster id, metadata
fetch h2c http://127.0.0.1:15010 --ttl 7200
issued h2c
grep -q "request identity=\['$ID'\] impersonated=$ID ttl=7200 clusterid=Kubernetes cn=0 authorization='Bearer tok-123'" \
	"$TBDIR/ca-15010.log" || tb_fail "CA request log: $(cat "$TBDIR/ca-15010.log")"
[ "$(stat -c %a "$TBDIR/h2c.key")" = 600 ] || tb_fail "key file mode"
# 2. TLS, the server verified by IP SAN against the test CA
fetch tls https://127.0.0.1:15012 --root-ca "$TBDIR/ca.pem"
issued tls
# 3. an intermediate bundled with the leaf in one cert_chain element
fetch bundle http://127.0.0.1:15013
issued bundle
grep -q 'intermediates=1' "$TBDIR/bundle.out" || tb_fail "bundle: $(cat "$TBDIR/bundle.out")"

# 4. refusals
refused deny 'refused: PERMISSION_DENIED \(7\): denied by test CA: spiffe://' http://127.0.0.1:15014
refused badtoken 'UNAUTHENTICATED \(16\): bad or missing bearer token' http://127.0.0.1:15010 \
	--token "$TBDIR/badtoken"
refused cluster 'INVALID_ARGUMENT \(3\): wrong clusterid' http://127.0.0.1:15010 --cluster-id x
refused notoken 'token file .*nosuch' http://127.0.0.1:15010 --token "$TBDIR/nosuch"
refused wrongid "is for 'spiffe://cluster.local/ns/evil/sa/mallory', not the requested" \
	http://127.0.0.1:15015
refused wrongkey 'public key is not the one in our CSR' http://127.0.0.1:15016
refused leafonly 'holds 1 certificate' http://127.0.0.1:15017
refused untrusted 'server certificate rejected' https://127.0.0.1:15012 --root-ca "$TBDIR/other.pem"
refused noalpn_h2c 'connection closed|protocol error|session ended' http://127.0.0.1:15012
refused noserver 'connect to 127.0.0.1:15999: Connection refused' http://127.0.0.1:15999
refused badaddr 'bad address' 127.0.0.1:15010

# 5. broken servers: a clear one-line error, exit 1, no sanitizer report, bounded time
refused garbage 'protocol error' http://127.0.0.1:16000
refused http1 'the server answered HTTP/1, not HTTP/2' http://127.0.0.1:16001
refused truncated 'connection closed by the server' http://127.0.0.1:16002
refused truncated_end 'ended inside a message' http://127.0.0.1:16003
refused html 'content-type is not application/grpc' http://127.0.0.1:16004
refused http503 'UNAVAILABLE \(14\): HTTP status 503' http://127.0.0.1:16005
refused huge 'over 64 MiB' http://127.0.0.1:16006
refused nostatus 'without a grpc-status' http://127.0.0.1:16007
refused badframe 'protocol error' http://127.0.0.1:16008
refused reset 'stream reset by the server' http://127.0.0.1:16009
start=$(date +%s%3N)
refused silent 'no reply from 127.0.0.1:16010 within [0-9]+ ms' http://127.0.0.1:16010 \
	--timeout-ms 700
[ $(($(date +%s%3N) - start)) -lt 5000 ] || tb_fail "silent: the timeout was not honoured"
refused compressed 'compressed message' http://127.0.0.1:16011

# The stream API (what delta xDS uses) against a grpcio bidi echo: two streams interleaved on
# one channel, a 3 MiB message through flow control, a timeout, a failing stream's status and
# grpc-message, a unary call on the same channel, stream calls after the channel is closed.
cat >"$TBDIR/stream.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ztunnel/grpc.h"
static int fails;
#define EXPECT(c, ...) do { if (!(c)) { fails++; printf("FAIL line %d: %s: ", __LINE__, #c); \
	printf(__VA_ARGS__); printf("\n"); } } while (0)
static int recv1(struct grpc_stream *s, uint8_t **m, size_t *n, int tmo, int *st, char *err)
{
	return grpc_stream_recv(s, m, n, tmo, st, err, 256);
}
int main(int argc, char **argv)
{
	struct grpc_metadata md[] = { { "clusterid", "Kubernetes" } };
	size_t sizes[] = { 10, 3 << 20, 0, 100000 }, n, i;
	char err[256] = "";
	uint8_t *big = malloc(3 << 20), *m = NULL;
	int st, r;
	for (i = 0; i < (3 << 20); i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	struct grpc_channel *ch = grpc_channel_open(argv[1], NULL, md, 1, 5000, err, sizeof(err));
	if (!ch) { printf("FAIL open: %s\n", err); return 1; }
	struct grpc_stream *a = grpc_stream_open(ch, "/test.Echo/Chat", err, sizeof(err));
	struct grpc_stream *b = grpc_stream_open(ch, "/test.Echo/Chat", err, sizeof(err));
	EXPECT(a && b, "%s", err);
	for (i = 0; i < 4; i++) {
		EXPECT(grpc_stream_send(a, big, sizes[i]) == 0, "send a %zu", i);
		EXPECT(grpc_stream_send(b, big + 1, 5) == 0, "send b %zu", i);
	}
	for (i = 0; i < 4; i++) {
		r = recv1(a, &m, &n, 5000, &st, err);
		EXPECT(r == 1 && n == sizes[i] && !memcmp(m, big, n), "a %zu: r %d n %zu %s", i, r, n, err);
		free(m);
		r = recv1(b, &m, &n, 5000, &st, err);
		EXPECT(r == 1 && n == 5 && !memcmp(m, big + 1, 5), "b %zu: r %d %s", i, r, err);
		free(m);
	}
	m = NULL;
	EXPECT(recv1(a, &m, &n, 200, &st, err) == 0 && !m, "nothing more within 200 ms");
	struct grpc_stream *f = grpc_stream_open(ch, "/test.Echo/Fail", err, sizeof(err));
	EXPECT(f && grpc_stream_send(f, big, 3) == 0, "fail stream");
	r = f ? recv1(f, &m, &n, 5000, &st, err) : 0;
	EXPECT(r < 0 && st == GRPC_PERMISSION_DENIED && strstr(err, "100% sure"), "r %d st %d '%s'",
	       r, st, err);
	grpc_stream_close(&f);
	EXPECT(!f, "closed");
	r = grpc_unary(ch, "/test.Echo/Chat", (const uint8_t *)"ping", 4, &m, &n, 5000, err,
		       sizeof(err));
	EXPECT(r == GRPC_OK && n == 4 && !memcmp(m, "ping", 4), "unary %d %s", r, err);
	free(m);
	EXPECT(grpc_stream_send(a, big, 7) == 0, "a still works");
	r = recv1(a, &m, &n, 5000, &st, err);
	EXPECT(r == 1 && n == 7, "a again: %d %s", r, err);
	free(m);
	grpc_channel_close(&ch);
	EXPECT(grpc_stream_send(a, big, 1) == -ENOTCONN, "send after channel close");
	EXPECT(recv1(a, &m, &n, 100, &st, err) == -ENOTCONN, "recv after channel close");
	grpc_stream_close(&a);
	grpc_stream_close(&b);
	free(big);
	printf("%s\n", fails ? "stream test failed" : "stream test ok");
	return fails != 0;
}
EOF
(cd "$TB_ROOT" && cc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -g -O1 \
	-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-Iinclude -o "$TBDIR/stream-test" "$TBDIR/stream.c" agent/grpc/*.c agent/tls/identity.c \
	agent/tls/xprt.c agent/tls/ktls.c agent/io/buf.c \
	-lssl -lcrypto -lnghttp2) >"$TBDIR/build-stream.log" 2>&1 ||
	tb_fail "building the stream driver: $(tail -20 "$TBDIR/build-stream.log")"
tb_bg cp "$PY" "$TB_ROOT/tests/e2e/cp/grpc_echo.py" --listen 127.0.0.1:15020 \
	>"$TBDIR/echo.log" 2>&1
tb_wait_port cp 15020
tb_exec cp timeout 60 "$TBDIR/stream-test" http://127.0.0.1:15020 >"$TBDIR/stream.out" 2>&1 ||
	{ cat "$TBDIR/stream.out" >&2; tb_fail "grpc streams"; }
tb_log "ok: grpc streams: $(tail -1 "$TBDIR/stream.out")"

tb_pass "CA client: 3 issued, $((N - 3)) refused cleanly ($N runs under ASan/UBSan)"
