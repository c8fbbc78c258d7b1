// unit-standalone
/* redirect_test: installs the capture in a private netns, checks what the kernel holds, and
 * proves real connections follow it (outbound to 15001, inbound to 15006, agent mark skipped). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "../../agent/redirect/redirect.c"
#include "../../agent/redirect/nft.c"
#include "../../agent/redirect/route.c"
#include "../../agent/redirect/backend.c"
#include "../../agent/redirect/ebpf.c"
#include "../../agent/redirect/ebpf_rules.c"
#include "../../agent/redirect/ebpf_pins.c"
#include "../../agent/redirect/sockmap.c"
#include "../../agent/io/addr.c"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80	/* linux/netfilter_ipv4.h; same value as IP6T_SO_ORIGINAL_DST */
#endif

#define OUT_MAX 65536
#define SKIP_STATUS 77

#include "check.h"

/* Runs a shell command in the current netns; its output goes to out. Returns its exit code. */
static int run(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[512];
	size_t n = 0, r;
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (outlen > 1 && (r = fread(out + n, 1, outlen - 1 - n, p)) > 0)
		n += r;
	if (outlen)
		out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char outbuf[OUT_MAX];

#define SH(...)                                                                        \
	do {                                                                           \
		int rc_ = run(outbuf, sizeof(outbuf), __VA_ARGS__);                    \
		CHECK(rc_ == 0, "command failed (%d): %s", rc_, outbuf);               \
	} while (0)

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static int sockaddr_of(int af, const char *ip, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		return inet_pton(AF_INET, ip, &s->sin_addr) == 1 ? (int)sizeof(*s) : -1;
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	return inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1 ? (int)sizeof(*s6) : -1;
}

static int tcp_listen(int af, const char *ip, int port)
{
	struct sockaddr_storage ss;
	int one = 1, len = sockaddr_of(af, ip, port, &ss);
	int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || len < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (af == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Non-blocking connect bounded by timeout_ms: a connected fd, or -errno (-ETIMEDOUT). */
static int tcp_connect(int af, const char *src, const char *dst, int port, int mark,
		       int timeout_ms)
{
	struct sockaddr_storage ss;
	struct pollfd pfd;
	socklen_t el = sizeof(int);
	int fd, len, e = 0;

	fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		e = errno;
	if (!e && src && ((len = sockaddr_of(af, src, 0, &ss)) < 0 ||
			  bind(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0))
		e = errno ? errno : EINVAL;
	len = sockaddr_of(af, dst, port, &ss);
	if (!e && len < 0)
		e = EINVAL;
	if (!e && connect(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0 && errno != EINPROGRESS)
		e = errno;
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (!e && poll(&pfd, 1, timeout_ms) != 1)
		e = ETIMEDOUT;
	if (!e && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e) {
		close(fd);
		return -e;
	}
	return fd;
}

/* Accepts one connection if it arrives within timeout_ms; -ETIMEDOUT otherwise. */
static int accept_within(int lfd, int timeout_ms)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	int fd;

	if (poll(&pfd, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* SO_ORIGINAL_DST of an accepted (redirected) connection as "ip:port", or "" on error. */
static const char *orig_dst(int fd, int af, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	int level = af == AF_INET ? SOL_IP : SOL_IPV6;
	const void *a;
	uint16_t port;

	out[0] = '\0';
	if (getsockopt(fd, level, SO_ORIGINAL_DST, &ss, &sl) < 0)
		return out;
	if (ss.ss_family == AF_INET) {
		a = &((struct sockaddr_in *)&ss)->sin_addr;
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else {
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (inet_ntop(ss.ss_family, a, ip, sizeof(ip)))
		snprintf(out, outlen, "%s:%u", ip, port);
	return out;
}

/* What `nft list ruleset` must show after redirect_install (nft 1.0.x spelling). */
static const char *const want_ruleset[] = {
	"table inet istio-ambient-nat {",
	"table inet istio-ambient-mangle {",
	"type nat hook prerouting priority dstnat; policy accept;",
	"type nat hook output priority -100; policy accept;",
	"type filter hook prerouting priority mangle; policy accept;",
	"type route hook output priority mangle; policy accept;",
	"meta mark & 0x00000fff == 0x00000539 ct mark set ct mark & 0xfffff111 | 0x00000111",
	"ct mark & 0x00000fff == 0x00000111 meta mark set meta mark & 0xfffff111 | 0x00000111",
	"ip saddr 169.254.7.127 accept",
	"ip daddr != 127.0.0.1 tcp dport != 15008 meta mark & 0x00000fff != 0x00000539 "
	"redirect to :15006",
	"ip6 daddr != ::1 tcp dport != 15008 meta mark & 0x00000fff != 0x00000539 "
	"redirect to :15006",
	"ip daddr 169.254.7.127 accept",
	"meta mark & 0x00000fff == 0x00000111 accept",
	"oifname \"lo\" ip daddr != 127.0.0.1 accept",
	"oifname \"lo\" ip6 daddr != ::1 accept",
	"meta l4proto tcp ip daddr != 127.0.0.1 meta mark & 0x00000fff != 0x00000539 "
	"redirect to :15001",
	"meta l4proto tcp ip6 daddr != ::1 meta mark & 0x00000fff != 0x00000539 redirect to :15001",
};

#define RULE_LINE "32764:\tfrom all fwmark 0x111/0xfff lookup 100"

/* Everything redirect_install promises, as seen by nft(8) and ip(8); ruleset gets the text. */
static void check_installed(char *ruleset, size_t len)
{
	const char *acc, *redir;

	CHECK(run(ruleset, len, "nft list ruleset") == 0, "nft list ruleset: %s", ruleset);
	for (size_t i = 0; i < sizeof(want_ruleset) / sizeof(want_ruleset[0]); i++)
		CHECK(count(ruleset, want_ruleset[i]) == 1, "ruleset lacks (once) '%s':\n%s",
		      want_ruleset[i], ruleset);
	/* In nat output the accepts must come before the redirect. */
	acc = strstr(ruleset, "== 0x00000111 accept");
	redir = strstr(ruleset, "redirect to :15001");
	CHECK(acc && redir && acc < redir, "nat output: accept rules not before redirect");
	SH("ip -4 rule show");
	CHECK(count(outbuf, RULE_LINE) == 1, "ip -4 rule: want one fwmark rule:\n%s", outbuf);
	SH("ip -6 rule show");
	CHECK(count(outbuf, RULE_LINE) == 1, "ip -6 rule: want one fwmark rule:\n%s", outbuf);
	SH("ip -4 route show table 100");
	CHECK(count(outbuf, "local default dev lo") == 1, "ip -4 route table 100:\n%s", outbuf);
	SH("ip -6 route show table 100");
	CHECK(count(outbuf, "local default dev lo") == 1, "ip -6 route table 100:\n%s", outbuf);
}

static void check_removed(void)
{
	SH("nft list ruleset");
	CHECK(!strstr(outbuf, "istio-ambient"), "tables left after remove:\n%s", outbuf);
	SH("ip -4 rule show; ip -6 rule show");
	CHECK(!strstr(outbuf, "fwmark 0x111"), "rules left after remove:\n%s", outbuf);
	/* ip(8) may fail on a table that is now gone: only the output matters. */
	run(outbuf, sizeof(outbuf), "ip -4 route show table 100; ip -6 route show table 100");
	CHECK(!strstr(outbuf, "local"), "routes left after remove:\n%s", outbuf);
}

/* Install, install again (idempotent: same state), remove, remove again, install again. */
static void test_install_remove(void)
{
	static char first[OUT_MAX], second[OUT_MAX];
	char err[256];
	int ret;

	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 0, false, err, sizeof(err));
	CHECK(ret == 0, "first install: %d %s", ret, err);
	check_installed(first, sizeof(first));
	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 0, false, err, sizeof(err));
	CHECK(ret == 0, "second install: %d %s", ret, err);
	check_installed(second, sizeof(second));
	CHECK(strcmp(first, second) == 0, "ruleset changed on reinstall:\n%s\n---\n%s", first,
	      second);
	ret = redirect_nft_remove(REDIRECT_AGENT_MARK, err, sizeof(err));
	CHECK(ret == 0, "remove: %d %s", ret, err);
	check_removed();
	ret = redirect_nft_remove(REDIRECT_AGENT_MARK, err, sizeof(err));
	CHECK(ret == 0, "remove of nothing: %d %s", ret, err);
	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 0, false, err, sizeof(err));
	CHECK(ret == 0, "install after remove: %d %s", ret, err);
	CHECK(err[0] == '\0', "err set on success: %s", err);
}

/* PACKET_MARK has one owner: the mark given to the backend is the one its rules leave alone,
 * compared under 0xfff, or exactly when it has higher bits; marks that cannot work are refused. */
static void test_mark_reaches_rules(void)
{
	static char rs[OUT_MAX];
	char err[256];
	int ret;

	ret = redirect_nft_install(0x777, 0, false, err, sizeof(err));
	CHECK(ret == 0, "install with mark 0x777: %d %s", ret, err);
	CHECK(run(rs, sizeof(rs), "nft list ruleset") == 0, "nft list ruleset: %s", rs);
	CHECK(count(rs, "meta mark & 0x00000fff != 0x00000777") == 4,
	      "the redirects leave mark 0x777 alone:\n%s", rs);
	CHECK(count(rs, "meta mark & 0x00000fff == 0x00000777 ct mark set") == 1,
	      "mark 0x777 sets the connection mark:\n%s", rs);
	CHECK(!strstr(rs, "0x00000539"), "no trace of the default mark:\n%s", rs);
	ret = redirect_nft_install(0x10539, 0, false, err, sizeof(err));
	CHECK(ret == 0, "install with mark 0x10539: %d %s", ret, err);
	CHECK(run(rs, sizeof(rs), "nft list ruleset") == 0, "nft list ruleset: %s", rs);
	CHECK(count(rs, "meta mark != 0x00010539") == 4 || count(rs, "meta mark & 0xffffffff != 0x00010539") == 4,
	      "a mark over 0xfff compares exactly:\n%s", rs);
	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 0, false, err, sizeof(err));
	CHECK(ret == 0, "back to the default mark for the traffic test: %d %s", ret, err);
	CHECK(redirect_mark_check(0x539, err, sizeof(err)) == 0, "0x539 is fine");
	CHECK(redirect_mark_check(0x111, err, sizeof(err)) < 0 && strstr(err, "0x111"),
	      "the connection mark is refused: %s", err);
	CHECK(redirect_mark_check(0x1000, err, sizeof(err)) < 0, "a mark with no low bits is refused");
	CHECK(redirect_backend("nftables") && redirect_backend("ebpf") && redirect_backend("none") && !redirect_backend("bpf"),
	      "backends by name");
}

/* The DNS rules: only with a DNS port, to that port, IPv4 UDP not out of lo and TCP not to
 * 127.0.0.1, the agent's mark left alone, before the TCP redirect to 15001. */
static void test_dns_rules(void)
{
	static char rs[OUT_MAX];
	const char *dns, *tcp;
	char err[256];
	int ret;

	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 15053, false, err, sizeof(err));
	CHECK(ret == 0, "install with DNS: %d %s", ret, err);
	CHECK(run(rs, sizeof(rs), "nft list ruleset") == 0, "nft list ruleset: %s", rs);
	CHECK(count(rs, "meta nfproto ipv4 udp dport 53 oifname != \"lo\" "
			"meta mark & 0x00000fff != 0x00000539 redirect to :15053") == 1,
	      "UDP 53 rule:\n%s", rs);
	CHECK(count(rs, "tcp dport 53 ip daddr != 127.0.0.1 "
			"meta mark & 0x00000fff != 0x00000539 redirect to :15053") == 1,
	      "TCP 53 rule:\n%s", rs);
	dns = strstr(rs, "redirect to :15053");
	tcp = strstr(rs, "redirect to :15001");
	CHECK(dns && tcp && dns < tcp, "the DNS redirect comes before the TCP one");
	CHECK(!strstr(rs, "nfproto ipv6 udp dport 53"), "no IPv6 DNS rule without dns_ipv6:\n%s", rs);
	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 15053, true, err, sizeof(err));
	CHECK(ret == 0 && run(rs, sizeof(rs), "nft list ruleset") == 0, "install with IPv6 DNS: %s",
	      err);
	CHECK(count(rs, "meta nfproto ipv6 udp dport 53 oifname != \"lo\" "
			"meta mark & 0x00000fff != 0x00000539 redirect to :15053") == 1,
	      "IPv6 UDP 53 rule:\n%s", rs);
	CHECK(count(rs, "tcp dport 53 ip6 daddr != ::1 "
			"meta mark & 0x00000fff != 0x00000539 redirect to :15053") == 1,
	      "IPv6 TCP 53 rule:\n%s", rs);
	CHECK(count(rs, "redirect to :15053") == 4, "four DNS rules with IPv6:\n%s", rs);
	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 5353, false, err, sizeof(err));
	CHECK(ret == 0 && run(rs, sizeof(rs), "nft list ruleset") == 0 &&
	      count(rs, "redirect to :5353") == 2 && !strstr(rs, ":15053"),
	      "DNS port follows DNS_PROXY_ADDR:\n%s", rs);
	ret = redirect_nft_install(REDIRECT_AGENT_MARK, 0, false, err, sizeof(err));
	CHECK(ret == 0 && run(rs, sizeof(rs), "nft list ruleset") == 0 && !strstr(rs, "dport 53"),
	      "DNS off: no port-53 rule:\n%s", rs);
}

/* Waits up to timeout_ms for one byte on fd; returns it, or -1 (timeout, EOF, error). */
static int read_byte(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&pfd, 1, timeout_ms) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

/*
 * The peer pod: its own netns at the far end of a veth. Connects to 10.77.0.1:80, which the
 * nat prerouting rule must send to 15006, and from the kubelet SNAT address, which it must not
 * (nothing listens on 80, so that one is refused). Stays alive until the test closes `go`.
 */
static int peer_main(int ready_w, int go_r)
{
	int fd;

	failures = 0;	/* count only this process's checks */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(20);
	if (unshare(CLONE_NEWNET) < 0 || write(ready_w, "r", 1) != 1)
		return 2;
	if (read_byte(go_r, 10000) != 'g')
		return 3;
	SH("ip link set lo up && ip addr add 10.77.0.2/24 dev v1 && "
	   "ip addr add 169.254.7.127/32 dev v1 && ip link set v1 up");
	fd = tcp_connect(AF_INET, NULL, "10.77.0.1", 80, 0, 3000);
	CHECK(fd >= 0, "peer -> 10.77.0.1:80 not redirected to 15006: %s", strerror(-fd));
	fd = tcp_connect(AF_INET, REDIRECT_KUBELET_SNAT, "10.77.0.1", 80, 0, 3000);
	CHECK(fd == -ECONNREFUSED, "kubelet-sourced connect should reach port 80 and be refused, "
	      "got %s", fd >= 0 ? "connected" : strerror(-fd));
	if (write(ready_w, failures ? "f" : "d", 1) != 1)
		return 4;
	read_byte(go_r, 10000);	/* EOF: the test is done with us */
	return failures ? 1 : 0;
}

/* A redirected connection must be waiting on lfd with want as its original destination. */
static void check_redirected(int lfd, int af, const char *want, const char *what)
{
	char got[INET6_ADDRSTRLEN + 8];
	int fd = accept_within(lfd, 1000);

	CHECK(fd >= 0, "%s: nothing accepted: %s", what, strerror(-fd));
	if (fd < 0)
		return;
	orig_dst(fd, af, got, sizeof(got));
	CHECK(strcmp(got, want) == 0, "%s: SO_ORIGINAL_DST '%s', want '%s'", what, got, want);
	close(fd);
}

/* Connections made inside the captured netns (10.77.0.1 and fd00:77::1 on v0). */
static void check_outbound(int l1, int l1v6)
{
	int fd;

	fd = tcp_connect(AF_INET, NULL, "10.77.0.2", 80, 0, 1000);
	CHECK(fd >= 0, "outbound v4 connect: %s", strerror(-fd));
	check_redirected(l1, AF_INET, "10.77.0.2:80", "outbound v4 -> 15001");
	if (fd >= 0)
		close(fd);
	fd = tcp_connect(AF_INET6, NULL, "fd00:77::2", 80, 0, 1000);
	CHECK(fd >= 0, "outbound v6 connect: %s", strerror(-fd));
	check_redirected(l1v6, AF_INET6, "fd00:77::2:80", "outbound v6 -> 15001");
	if (fd >= 0)
		close(fd);
	/* The agent's own sockets (mark 0x539) go straight out: the peer refuses port 80. */
	fd = tcp_connect(AF_INET, NULL, "10.77.0.2", 80, REDIRECT_AGENT_MARK, 1000);
	CHECK(fd < 0, "agent-marked connect was redirected (connected)");
	if (fd >= 0)
		close(fd);
	CHECK(accept_within(l1, 200) == -ETIMEDOUT, "agent-marked connect reached 15001");
	/* Loopback traffic is left alone. */
	fd = tcp_connect(AF_INET, NULL, "127.0.0.1", 80, 0, 1000);
	CHECK(fd == -ECONNREFUSED, "127.0.0.1:80 should be refused, got %s",
	      fd >= 0 ? "connected" : strerror(-fd));
	if (fd >= 0)
		close(fd);
}

/*
 * The agent's inbound leg: a transparent socket (mark 0x539) spoofing the peer's address
 * connects to the app in this netns. Only the connmark -> mark -> table 100 chain brings the
 * app's reply (addressed to 10.77.0.2) back to it instead of out to the real peer.
 */
static void check_spoofed(void)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET_ADDRSTRLEN] = "";
	int app, fd, afd;

	app = tcp_listen(AF_INET, "0.0.0.0", 9000);
	CHECK(app >= 0, "app listen: %s", strerror(errno));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0 && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &(int){ 1 }, sizeof(int)) == 0 &&
	      setsockopt(fd, SOL_SOCKET, SO_MARK, &(int){ REDIRECT_AGENT_MARK }, sizeof(int)) == 0,
	      "transparent socket: %s", strerror(errno));
	sl = (socklen_t)sockaddr_of(AF_INET, "10.77.0.2", 40000, &ss);
	CHECK(bind(fd, (struct sockaddr *)&ss, sl) == 0, "spoofed bind: %s", strerror(errno));
	sl = (socklen_t)sockaddr_of(AF_INET, "10.77.0.1", 9000, &ss);
	CHECK(connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno == EINPROGRESS,
	      "spoofed connect: %s", strerror(errno));
	CHECK(poll(&(struct pollfd){ .fd = fd, .events = POLLOUT }, 1, 1000) == 1 &&
	      getsockopt(fd, SOL_SOCKET, SO_ERROR, &(int){ 0 }, &(socklen_t){ sizeof(int) }) == 0,
	      "spoofed connect did not complete");
	afd = accept_within(app, 1000);
	sl = sizeof(ss);
	CHECK(afd >= 0 && getpeername(afd, (struct sockaddr *)&ss, &sl) == 0 &&
	      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip)) &&
	      !strcmp(ip, "10.77.0.2"), "app did not see the spoofed source (got '%s')", ip);
	CHECK(afd >= 0 && send(afd, "x", 1, 0) == 1 &&
	      poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 1000) == 1,
	      "app's reply did not reach the transparent socket");
	if (afd >= 0)
		close(afd);
	close(fd);
	close(app);
}

static void test_traffic(void)
{
	int up[2], go[2], l1, l6, l1v6, st = -1;
	pid_t peer;

	if (pipe2(up, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
		CHECK(0, "pipe: %s", strerror(errno));
		return;
	}
	fflush(stdout);
	peer = fork();
	if (peer == 0) {
		close(up[0]);
		close(go[1]);
		exit(peer_main(up[1], go[0]));
	}
	close(up[1]);
	close(go[0]);
	CHECK(peer > 0 && read_byte(up[0], 5000) == 'r', "peer netns did not start");
	SH("ip link add v0 type veth peer name v1 netns %d", (int)peer);
	SH("ip addr add 10.77.0.1/24 dev v0 && ip -6 addr add fd00:77::1/64 dev v0 nodad && "
	   "ip link set v0 up && ip route add 169.254.7.127/32 dev v0");
	l1 = tcp_listen(AF_INET, "0.0.0.0", REDIRECT_PORT_OUTBOUND);
	l1v6 = tcp_listen(AF_INET6, "::", REDIRECT_PORT_OUTBOUND);
	l6 = tcp_listen(AF_INET, "0.0.0.0", REDIRECT_PORT_INBOUND_PLAIN);
	CHECK(l1 >= 0 && l1v6 >= 0 && l6 >= 0, "listen: %s", strerror(errno));
	CHECK(write(go[1], "g", 1) == 1, "write to peer");
	CHECK(read_byte(up[0], 10000) == 'd', "peer checks failed or timed out");
	check_redirected(l6, AF_INET, "10.77.0.1:80", "inbound -> 15006");
	CHECK(accept_within(l6, 200) == -ETIMEDOUT, "kubelet-sourced connect reached 15006");
	check_outbound(l1, l1v6);
	check_spoofed();
	close(go[1]);	/* releases the peer */
	if (peer > 0)
		waitpid(peer, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer exit status %d", st);
	close(up[0]);
	close(l1);
	close(l1v6);
	close(l6);
}

/* redirect_nl_ack on crafted kernel answers: short, plain, with extended-ack text. */
static void test_ack_parse(void)
{
	char buf[256] __attribute__((aligned(4))) = { 0 }, why[64];
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	struct nlmsgerr *e;

	nlh->nlmsg_type = NLMSG_ERROR;
	nlh->nlmsg_len = NLMSG_HDRLEN + 2;
	CHECK(redirect_nl_ack(nlh, why, sizeof(why)) == -EPROTO, "short ack not rejected");
	nlh->nlmsg_len = NLMSG_HDRLEN + sizeof(*e);
	e = mnl_nlmsg_get_payload(nlh);
	e->error = -EEXIST;
	CHECK(redirect_nl_ack(nlh, why, sizeof(why)) == -EEXIST && !why[0], "plain error");
	e->error = 5;
	CHECK(redirect_nl_ack(nlh, why, sizeof(why)) == -EPROTO, "positive error accepted");
	e->error = -EINVAL;
	nlh->nlmsg_flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
	mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, "bad things");
	CHECK(redirect_nl_ack(nlh, why, sizeof(why)) == -EINVAL && !strcmp(why, "bad things"),
	      "ext ack text: '%s'", why);
	/* Uncapped ack claiming an embedded request longer than the message: no overread. */
	nlh->nlmsg_flags = NLM_F_ACK_TLVS;
	e->msg.nlmsg_len = 4000;
	CHECK(redirect_nl_ack(nlh, why, sizeof(why)) == -EINVAL && !why[0], "bogus inner len");
}

/*
 * A transaction the kernel rejects (deleting a table that is not there, then adding one):
 * -ENOENT, an error that names the failing step, and nothing committed.
 */
static void test_nft_error(void)
{
	struct nft_txn *t = nft_txn_new();
	char err[256] = "";
	int ret;

	CHECK(t, "nft_txn_new");
	if (!t)
		return;
	ret = txn_table(t, NFT_NAT, NFT_MSG_DELTABLE, 0, "delete table");
	if (!ret)
		ret = txn_table(t, NFT_MANGLE, NFT_MSG_NEWTABLE, NLM_F_CREATE, "add table");
	CHECK(ret == 0, "building: %d", ret);
	ret = nft_commit(t, err, sizeof(err));
	nft_txn_free(&t);
	CHECK(ret == -ENOENT, "commit of bad transaction: %d (%s)", ret, err);
	CHECK(strstr(err, "delete table inet istio-ambient-nat: No such file or directory"),
	      "unhelpful error: '%s'", err);
	SH("nft list ruleset");
	CHECK(!strstr(outbuf, "istio-ambient-mangle"), "failed transaction left a table behind");
}

static int netns_main(void)
{
	failures = 0;
	alarm(30);	/* a hung netlink or socket call dies here instead of hanging the run */
	if (unshare(CLONE_NEWNET) < 0) {
		printf("redirect_test: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return errno == EPERM ? SKIP_STATUS : 2;
	}
	if (run(outbuf, sizeof(outbuf), "nft --version && ip -V") != 0) {
		printf("FAIL redirect_test: nft or ip missing: %s\n", outbuf);
		return 2;
	}
	SH("ip link set lo up");
	SH("nft list ruleset");
	CHECK(!strstr(outbuf, "istio-ambient"), "fresh netns already has tables");
	test_nft_error();
	test_install_remove();
	test_mark_reaches_rules();
	test_dns_rules();
	test_traffic();
	return failures ? 1 : 0;
}

int main(void)
{
	pid_t pid;
	int st = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	test_ack_parse();
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		exit(netns_main());	/* the netns, veth and rules die with this process */
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		printf("FAIL redirect_test: fork/wait: %s\n", strerror(errno));
		return 1;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP_STATUS) {
		printf("redirect_test: SKIP (needs CAP_SYS_ADMIN/CAP_NET_ADMIN for a netns)\n");
		return failures ? 1 : 0;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL redirect_test: netns checks failed (status 0x%x)\n", st);
		return 1;
	}
	if (!failures)
		printf("redirect_test: ok\n");
	return failures ? 1 : 0;
}
