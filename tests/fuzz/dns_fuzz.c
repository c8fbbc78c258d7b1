/* dns_fuzz: libFuzzer target for the DNS proxy's query path (dns_answer) and the helpers the
 * forwarder runs on the same bytes (dns_error_reply, dns_is_answer).
 *
 * Input: one selector byte (bit 0: the client is in namespace prod, else default; bit 1: TCP,
 * else UDP), then the message as a pod would send it. Whatever the bytes: a reply is a DNS
 * response to that query (same id, QR set, parses again with ldns) and fits the transport;
 * garbage is dropped, never answered.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include <ztunnel/dns.h>
#include <ztunnel/localcfg.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char mesh[] =
	"workloads:\n"
	"- {uid: u1, name: db-0, namespace: default, workloadIps: [10.1.0.5, fd00::5],\n"
	"   services: {\"default/db.default.svc.cluster.local\": {5432: 5432}}}\n"
	"- {uid: u2, name: db-1, namespace: default, workloadIps: [10.1.0.6],\n"
	"   services: {\"default/db.default.svc.cluster.local\": {5432: 5432},\n"
	"              \"default/many.default.svc.cluster.local\": {80: 80}}}\n"
	"services:\n"
	"- {name: web, namespace: default, hostname: web.default.svc.cluster.local,\n"
	"   vips: [/10.96.0.10, /fd00::10], ports: {80: 8080}}\n"
	"- {name: web, namespace: prod, hostname: web.prod.svc.cluster.local, vips: [/10.96.1.10],\n"
	"   ports: {80: 8080}}\n"
	"- {name: db, namespace: default, hostname: db.default.svc.cluster.local, vips: []}\n"
	"- {name: many, namespace: default, hostname: many.default.svc.cluster.local, vips: []}\n"
	"- {name: ex, namespace: default, hostname: example.com, vips: [/240.0.0.1]}\n"
	"- {name: wild, namespace: default, hostname: \"*.wild.example\", vips: [/240.0.0.2]}\n";

static struct state_snapshot *snapshot(void)
{
	static struct state_snapshot *snap;
	char err[256];

	if (!snap) {
		snap = localcfg_load_buffer("fuzz", mesh, strlen(mesh), err, sizeof(err));
		if (!snap) {
			fprintf(stderr, "dns_fuzz: config: %s\n", err);
			abort();
		}
	}
	return snap;
}

static void check_reply(const uint8_t *msg, size_t len, const uint8_t *reply, size_t rlen,
			size_t limit)
{
	ldns_pkt *r = NULL;
	bool tc;

	if (rlen > limit || rlen < 12)
		abort();
	if (!dns_is_answer(reply, rlen, (uint16_t)(msg[0] << 8 | msg[1]), &tc))
		abort();	/* an answer to this query */
	if (ldns_wire2pkt(&r, reply, rlen) != LDNS_STATUS_OK)
		abort();	/* what we build parses */
	ldns_pkt_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_client client;
	struct dns_query_info info;
	const uint8_t *msg = data + 1;
	size_t len, rlen = 0, limit;
	uint8_t *reply = NULL;
	enum dns_verdict v;

	if (size < 1)
		return 0;
	len = size - 1;
	client.namespace_ = (data[0] & 1) ? "prod" : "default";
	client.network = "";
	limit = (data[0] & 2) ? DNS_TCP_LIMIT : 0;
	v = dns_answer(snapshot(), &client, "cluster.local", msg, len, limit, &reply, &rlen, &info);
	switch (v) {
	case DNS_REPLY:
		check_reply(msg, len, reply, rlen, limit ? limit : info.udp_limit);
		break;
	case DNS_FORWARD:
		if (reply || len < 12 || (msg[2] & 0x80))
			abort();	/* forwarded: a query, nothing built */
		free(reply);
		reply = NULL;
		/* the forwarder's SERVFAIL when the resolvers fail */
		if (dns_error_reply(msg, len, 2, &reply, &rlen) != 0)
			abort();	/* it parsed once, it parses again */
		check_reply(msg, len, reply, rlen, DNS_TCP_LIMIT);
		break;
	case DNS_DROP:
		if (reply)
			abort();
		break;
	}
	free(reply);
	return 0;
}
