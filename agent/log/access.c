/* access: "connection complete" log lines with upstream ztunnel's keys. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <ztunnel/access.h>
#include <ztunnel/addr.h>
#include <ztunnel/io.h>
#include <ztunnel/log.h>

const char *access_addr(const struct sockaddr_storage *addr, char *buf, size_t len)
{
	struct sockaddr_storage copy = *addr;
	const struct sockaddr_storage *ss = &copy;
	char ip[INET6_ADDRSTRLEN];

	io_addr_unmap(&copy);	/* ::ffff:a.b.c.d is logged as a.b.c.d */

	if (ss->ss_family == AF_INET) {
		/* by hand, not printf: one or more per logged connection */
		const struct sockaddr_in *in = (const void *)ss;
		const uint8_t *a = (const uint8_t *)&in->sin_addr;
		unsigned port = ntohs(in->sin_port);
		char text[sizeof("255.255.255.255:65535")], *p = text;
		size_t n;

		for (int i = 0; i < 4; i++) {
			if (a[i] >= 100)
				*p++ = (char)('0' + a[i] / 100);
			if (a[i] >= 10)
				*p++ = (char)('0' + a[i] / 10 % 10);
			*p++ = (char)('0' + a[i] % 10);
			*p++ = i < 3 ? '.' : ':';
		}
		for (unsigned d = port >= 10000 ? 10000 : port >= 1000 ? 1000 : port >= 100 ? 100 :
				  port >= 10 ? 10 : 1; d; d /= 10)
			*p++ = (char)('0' + port / d % 10);
		n = (size_t)(p - text);	/* cut to len as snprintf would */
		if (len) {
			n = n < len ? n : len - 1;
			memcpy(buf, text, n);
			buf[n] = '\0';
		}
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "-");
	}
	return buf;
}

/* A record's address as access_addr writes it */
static void packed_addr(const struct io_addr *a, char *buf, size_t len)
{
	struct sockaddr_storage ss;

	io_addr_unpack(a, &ss);
	access_addr(&ss, buf, len);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

void access_track(struct access_tracker *t, struct access_record *r, access_abort_fn abort)
{
	r->tracker = t;
	r->abort = abort;
	r->tprev = NULL;
	r->tnext = t->head;
	if (t->head)
		t->head->tprev = r;
	t->head = r;
	t->n++;
}

static void untrack(struct access_record *r)
{
	struct access_tracker *t = r->tracker;

	if (!t)
		return;
	if (r->tprev)
		r->tprev->tnext = r->tnext;
	else
		t->head = r->tnext;
	if (r->tnext)
		r->tnext->tprev = r->tprev;
	t->n--;
	r->tracker = NULL;
	r->tprev = r->tnext = NULL;
}

static __thread unsigned open_here;	/* records are filled, counted and ended on one thread */

unsigned access_open_here(void)
{
	return open_here;
}

void access_count_open(struct access_record *r, struct metrics_series *series, struct metrics *m)
{
	if (!r->counted)
		open_here++;
	r->counted = true;
	r->series = series;
	r->metrics = m;
	metrics_conn_opened(series);
	if (m)
		metrics_gauge_add(m, METRICS_ACTIVE_CONNECTIONS, 1);
}

void access_log_complete(struct access_record *r, const char *error)
{
	char src[64], dst[64], hb[64];
	double secs = (double)(io_now_ms() - r->start_ms) / 1000.0;

	untrack(r);
	if (r->counted)
		open_here--;
	r->counted = false;
	if (r->series) {
		/* Istio flips sent/received for reporter=source (istio/istio#32399): there they are
		 * the client's; for reporter=destination, received is what the client sent */
		if (r->direction == ACCESS_OUTBOUND)
			metrics_bytes(r->series, r->bytes_recv, r->bytes_sent);
		else
			metrics_bytes(r->series, r->bytes_sent, r->bytes_recv);
		metrics_conn_closed(r->series);
		r->series = NULL;
	}
	if (r->metrics) {
		metrics_gauge_add(r->metrics, METRICS_ACTIVE_CONNECTIONS, -1);
		r->metrics = NULL;
	}

	packed_addr(&r->src, src, sizeof(src));
	packed_addr(&r->dst, dst, sizeof(dst));
	packed_addr(&r->hbone, hb, sizeof(hb));
	/* the error field is in the format itself, so that the logger quotes and escapes it */
#define ACCESS_FIELDS                                                                       \
	"src.addr=%s src.workload=%s src.namespace=%s src.identity=%s dst.addr=%s "         \
	"dst.hbone_addr=%s dst.service=%s dst.workload=%s dst.namespace=%s dst.identity=%s " \
	"direction=%s bytes_sent=%llu bytes_recv=%llu duration=%.3fs"
	log_emit(error ? LOG_WARN : LOG_INFO, "connection complete",
		 error ? ACCESS_FIELDS " error=\"%s\"" : ACCESS_FIELDS "%.0s", src,
		 or_dash(r->names[ACCESS_SRC_WORKLOAD]), or_dash(r->names[ACCESS_SRC_NAMESPACE]),
		 or_dash(r->names[ACCESS_SRC_IDENTITY]), dst, hb,
		 or_dash(r->names[ACCESS_DST_SERVICE]), or_dash(r->names[ACCESS_DST_WORKLOAD]),
		 or_dash(r->names[ACCESS_DST_NAMESPACE]), or_dash(r->names[ACCESS_DST_IDENTITY]),
		 r->direction == ACCESS_OUTBOUND ? "outbound" : "inbound",
		 (unsigned long long)r->bytes_sent, (unsigned long long)r->bytes_recv, secs,
		 error ? error : "");
#undef ACCESS_FIELDS
	access_names_release(r);
}
