/* reuseport_test: the SK_REUSEPORT program on a real listener group (two loopback listeners
 * of one port, one per "worker"): new connections go to the worker publishing the lower load,
 * each placement counts against that worker until it publishes again, equal loads share, and
 * a socket known but not selectable (the ebpf backend's sockmap one) falls back to the hash. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ztunnel/log.h>

#include "../../agent/proxy/proxy-int.h"

#include "check.h"

static int listener(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(*port) };
	socklen_t len = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 256) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Opens n connections to port, then counts what each listener accepted (closing all). */
static void connect_n(uint16_t port, int n, const int *ls, unsigned *got)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int *cs = calloc((size_t)n, sizeof(*cs)), fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; cs && i < n; i++) {
		cs[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(cs[i], (struct sockaddr *)&sa, sizeof(sa)) < 0)
			CHECK(0, "connect: %s", strerror(errno));
	}
	got[0] = got[1] = 0;
	for (int l = 0; l < 2; l++)
		while ((fd = accept(ls[l], NULL, NULL)) >= 0) {
			got[l]++;
			close(fd);
		}
	for (int i = 0; cs && i < n; i++)
		close(cs[i]);
	free(cs);
}

int main(void)
{
	struct proxy_reuse *r;
	struct proxy_pod *pod = calloc(1, sizeof(*pod));
	uint16_t port = 0;
	int ls[2], fds[2];
	unsigned got[2];

	log_set_level_name("error");
	r = proxy_reuse_open(2);
	if (!r) {
		printf("SKIP reuseport_test: no SK_REUSEPORT program here\n");
		return 77;
	}
	ls[0] = listener(&port);
	ls[1] = listener(&port);
	CHECK(ls[0] >= 0 && ls[1] >= 0, "listeners: %s", strerror(errno));
	memcpy(fds, ls, sizeof(fds));
	CHECK(proxy_reuse_add(r, pod, PROXY_OUTBOUND, fds) == 0, "group added");

	proxy_reuse_publish(r, 0, 100);	/* worker 0 holds 100 connections, worker 1 none */
	proxy_reuse_publish(r, 1, 0);
	connect_n(port, 20, ls, got);
	CHECK(got[0] == 0 && got[1] == 20, "the idle worker gets them all: %u/%u", got[0], got[1]);
	CHECK(proxy_reuse_load(r, 1) == 20, "each placement counts until the next publish: %u %u",
	      proxy_reuse_load(r, 0), proxy_reuse_load(r, 1));

	proxy_reuse_publish(r, 0, 0);
	proxy_reuse_publish(r, 1, 1000);
	connect_n(port, 20, ls, got);
	CHECK(got[0] == 20 && got[1] == 0, "now worker 0 is idle: %u/%u", got[0], got[1]);

	proxy_reuse_publish(r, 0, 0);
	proxy_reuse_publish(r, 1, 0);
	connect_n(port, 40, ls, got);
	CHECK(got[0] == 20 && got[1] == 20, "equal loads alternate: %u/%u", got[0], got[1]);

	/* worker 0's socket known but not selectable: worker 0 least loaded means the hash */
	proxy_reuse_del(r, pod);
	fds[0] = -ls[0] - 1;
	CHECK(proxy_reuse_add(r, pod, PROXY_OUTBOUND, fds) == 0, "group added again");
	proxy_reuse_publish(r, 0, 1000);
	proxy_reuse_publish(r, 1, 0);
	connect_n(port, 20, ls, got);
	CHECK(got[1] == 20, "worker 1 least loaded, selectable: %u/%u", got[0], got[1]);
	proxy_reuse_publish(r, 0, 0);
	proxy_reuse_publish(r, 1, 1000);
	connect_n(port, 40, ls, got);
	CHECK(got[0] + got[1] == 40 && got[0] > 0, "worker 0 least loaded: the hash: %u/%u",
	      got[0], got[1]);

	proxy_reuse_del(r, pod);
	CHECK(!pod->reuse, "forgotten");
	close(ls[0]);
	close(ls[1]);
	proxy_reuse_close(&r);
	free(pod);
	printf("%s\n", failures ? "FAILED" : "reuseport_test: ok");
	return failures ? 1 : 0;
}
