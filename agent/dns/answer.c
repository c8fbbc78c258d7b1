/* dns/answer: what the proxy says to one query: the mesh's A/AAAA records, or "forward it". */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include <ztunnel/dns.h>

#include "dns-int.h"

/*
 * As upstream's src/dns/server.rs: the requested name and the Kubernetes forms it may stand for
 * (aliases), each tried as itself and then as wildcards of decreasing specificity, against the
 * services' hostnames. Names here are lower case, without the trailing dot.
 */
#define MAX_ALIASES 16
#define MAX_ADDRS 64		/* records in one answer; more would not fit 512 bytes anyway */

struct alias {
	char name[DNS_NAME_MAX];
	int stripped;		/* a search domain was cut off: the length of what is left, else -1 */
};

struct aliases {
	struct alias v[MAX_ALIASES];
	size_t n;
};

static size_t label_count(const char *name)
{
	size_t n = 1;

	for (; *name; name++)
		n += *name == '.';
	return n;
}

/* name ends with ".domain" and has more labels than domain (upstream's has_domain). */
static bool has_domain(const char *name, const char *domain)
{
	size_t nl = strlen(name), dl = strlen(domain);

	return nl > dl + 1 && name[nl - dl - 1] == '.' && strcmp(name + nl - dl, domain) == 0;
}

static void add_alias(struct aliases *a, const char *name, int stripped)
{
	if (a->n >= MAX_ALIASES || strlen(name) >= DNS_NAME_MAX)
		return;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].name, name) == 0)
			return;
	snprintf(a->v[a->n].name, DNS_NAME_MAX, "%s", name);
	a->v[a->n++].stripped = stripped;
}

static void add_joined(struct aliases *a, const char *x, const char *y, int stripped)
{
	char buf[DNS_NAME_MAX * 2];

	snprintf(buf, sizeof(buf), "%s.%s", x, y);
	add_alias(a, buf, stripped);
}

/* The cluster's domains seen from the client's namespace. */
struct domains {
	char ns_svc[DNS_NAME_MAX];	/* <ns>.svc.<domain> */
	char svc[DNS_NAME_MAX];		/* svc.<domain> */
	const char *domain;		/* <domain> */
};

/* The Kubernetes FQDNs name may be short for (upstream's to_kube_fqdns). */
static void add_kube_fqdns(struct aliases *a, const char *name, const struct domains *d,
			   int stripped)
{
	switch (label_count(name)) {
	case 1:		/* <svc> in the client's namespace */
		add_joined(a, name, d->ns_svc, stripped);
		break;
	case 2:		/* <svc>.<ns>, or <pod>.<subdomain> in the client's namespace */
		add_joined(a, name, d->svc, stripped);
		add_joined(a, name, d->ns_svc, stripped);
		break;
	case 3:		/* <svc>.<ns>.svc, or <pod>.<subdomain>.<ns> */
		if (has_domain(name, "svc"))
			add_joined(a, name, d->domain, stripped);
		add_joined(a, name, d->svc, stripped);
		break;
	case 4:		/* <pod>.<subdomain>.<ns>.svc */
		if (has_domain(name, "svc"))
			add_joined(a, name, d->domain, stripped);
		break;
	default:
		break;
	}
}

/* The requested name first, then its expansions, then the same for the name with each of the
 * pod's search domains cut off (upstream's get_aliases). */
static void dns_aliases(const char *name, const char *ns, const char *domain, struct aliases *a)
{
	struct domains d = { .domain = domain };
	const char *search[3];

	snprintf(d.ns_svc, sizeof(d.ns_svc), "%s.svc.%s", ns, domain);
	snprintf(d.svc, sizeof(d.svc), "svc.%s", domain);
	search[0] = d.ns_svc;
	search[1] = d.svc;
	search[2] = domain;
	a->n = 0;
	add_alias(a, name, -1);
	add_kube_fqdns(a, name, &d, -1);
	for (int i = 0; i < 3; i++) {
		char cut[DNS_NAME_MAX];
		size_t len;

		if (!has_domain(name, search[i]))
			continue;
		len = strlen(name) - strlen(search[i]) - 1;
		snprintf(cut, sizeof(cut), "%.*s", (int)len, name);
		add_alias(a, cut, (int)len);
		add_kube_fqdns(a, cut, &d, (int)len);
	}
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t sl = strlen(s), xl = strlen(suffix);

	return sl >= xl && strcasecmp(s + sl - xl, suffix) == 0;
}

/*
 * The service with hostname host (exact, or the literal wildcard host "*.example.com"), the one
 * in the client's namespace first. Services without a VIP only count when they are Kubernetes
 * headless services (hostname under .svc.<domain>), as upstream: a VIP-less ServiceEntry is
 * left to the upstream resolvers.
 */
static const struct state_service *find_service(const struct state_snapshot *snap,
						const char *host, const char *ns,
						const char *svc_suffix)
{
	const struct state_service *first = NULL;

	for (size_t i = 0; i < snap->n_services; i++) {
		const struct state_service *s = &snap->services[i];

		if (!s->hostname || strcasecmp(s->hostname, host) != 0)
			continue;
		if (!s->n_vips && !ends_with(s->hostname, svc_suffix))
			continue;
		if (s->namespace_ && strcmp(s->namespace_, ns) == 0)
			return s;
		if (!first)
			first = s;
	}
	return first;
}

/* Upstream's find_server: every alias as itself, then its wildcards: for "a.b.c" "*.b.c" and
 * "*.c" (each dot of the name starts one). */
static const struct state_service *find_server(const struct state_snapshot *snap,
					       const struct aliases *a, const char *ns,
					       const char *domain, const struct alias **matched,
					       bool *wildcard)
{
	char suffix[DNS_NAME_MAX + 8], search[DNS_NAME_MAX + 2];

	snprintf(suffix, sizeof(suffix), ".svc.%s", domain);
	for (size_t i = 0; i < a->n; i++) {
		const char *name = a->v[i].name, *dot = NULL;

		do {
			const struct state_service *s;

			snprintf(search, sizeof(search), "%s%s", dot ? "*" : "", dot ? dot : name);
			s = find_service(snap, search, ns, suffix);
			if (s) {
				*matched = &a->v[i];
				*wildcard = dot != NULL;
				return s;
			}
			dot = strchr(dot ? dot + 1 : name, '.');
		} while (dot);
	}
	return NULL;
}

/*
 * A workload whose own hostname is one of the aliases (exact), the client's namespace first:
 * a StatefulSet pod's <pod>.<subdomain>.<ns>.svc.<domain>. Upstream leaves these to kube-dns
 * (a TODO in its find_server); tried only when no service matched.
 */
static const struct state_workload *find_workload(const struct state_snapshot *snap,
						  const struct aliases *a, const char *ns,
						  const struct alias **matched)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct state_workload *first = NULL;

		for (size_t k = 0; k < snap->n_workloads; k++) {
			const struct state_workload *w = &snap->workloads[k];

			if (!w->hostname || strcasecmp(w->hostname, a->v[i].name) != 0)
				continue;
			if (w->namespace_ && strcmp(w->namespace_, ns) == 0) {
				first = w;
				break;
			}
			if (!first)
				first = w;
		}
		if (first) {
			*matched = &a->v[i];
			return first;
		}
	}
	return NULL;
}

static size_t workload_addrs(const struct state_workload *w, int family, struct state_ip *out,
			     size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < w->n_ips && n < max; i++)
		if (w->ips[i].family == family)
			out[n++] = w->ips[i];
	return n;
}

/* key == "<ns>/<hostname>" of svc */
static bool lists_service(const struct state_workload *w, const struct state_service *svc)
{
	size_t nl = strlen(svc->namespace_ ? svc->namespace_ : "");

	for (size_t i = 0; i < w->n_services; i++) {
		const char *k = w->services[i].service_key;

		if (k && svc->namespace_ && strncmp(k, svc->namespace_, nl) == 0 && k[nl] == '/' &&
		    strcasecmp(k + nl + 1, svc->hostname) == 0)
			return true;
	}
	return false;
}

/* The service's VIPs of family, or for a headless one the first address of family of each of
 * its endpoints (upstream's get_addresses); shuffled. */
static size_t service_addrs(const struct state_snapshot *snap, const struct state_service *svc,
			    int family, struct state_ip *out, size_t max)
{
	size_t n = 0;

	if (svc->n_vips) {
		for (size_t i = 0; i < svc->n_vips && n < max; i++)
			if (svc->vips[i].family == family)
				out[n++] = svc->vips[i];
	} else {
		for (size_t i = 0; i < snap->n_workloads && n < max; i++) {
			const struct state_workload *w = &snap->workloads[i];

			if (!lists_service(w, svc))
				continue;
			for (size_t j = 0; j < w->n_ips; j++)
				if (w->ips[j].family == family) {
					out[n++] = w->ips[j];
					break;
				}
		}
	}
	for (size_t i = n; i > 1; i--) {	/* Fisher-Yates */
		size_t j = arc4random_uniform((uint32_t)i);
		struct state_ip t = out[i - 1];

		out[i - 1] = out[j];
		out[j] = t;
	}
	return n;
}

/* A response to q: same id, opcode, RD and question; RA set; rcode; no records yet. */
static ldns_pkt *response_to(const ldns_pkt *q, uint8_t rcode)
{
	ldns_pkt *r = ldns_pkt_new();
	ldns_rr_list *qs = ldns_pkt_question(q);

	if (!r)
		return NULL;
	ldns_pkt_set_id(r, ldns_pkt_id(q));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_opcode(r, ldns_pkt_get_opcode(q));
	ldns_pkt_set_rd(r, ldns_pkt_rd(q));
	ldns_pkt_set_cd(r, ldns_pkt_cd(q));
	ldns_pkt_set_ra(r, true);
	ldns_pkt_set_rcode(r, rcode);
	for (size_t i = 0; qs && i < ldns_rr_list_rr_count(qs) && i < 1; i++) {
		ldns_rr *c = ldns_rr_clone(ldns_rr_list_rr(qs, i));

		if (!c || !ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, c)) {
			ldns_rr_free(c);
			ldns_pkt_free(r);
			return NULL;
		}
	}
	if (ldns_pkt_edns(q))
		ldns_pkt_set_edns_udp_size(r, 1232);
	return r;
}

/* Wire form of r, at most limit bytes: a longer one goes out truncated (TC, no answers). */
static int encode(ldns_pkt *r, size_t limit, uint8_t **out, size_t *len)
{
	if (ldns_pkt2wire(out, r, len) != LDNS_STATUS_OK)
		return -ENOMEM;
	if (*len <= limit)
		return 0;
	free(*out);
	*out = NULL;
	ldns_rr_list_deep_free(ldns_pkt_answer(r));
	ldns_pkt_set_answer(r, ldns_rr_list_new());
	ldns_pkt_set_ancount(r, 0);
	ldns_pkt_set_tc(r, true);
	if (ldns_pkt2wire(out, r, len) != LDNS_STATUS_OK)
		return -ENOMEM;
	return 0;
}

static bool push_record(ldns_pkt *r, const ldns_rdf *owner, ldns_rr_type type, ldns_rdf *rdata)
{
	ldns_rr *rr = ldns_rr_new();
	ldns_rdf *o = ldns_rdf_clone(owner);

	if (!rr || !o || !rdata) {
		ldns_rr_free(rr);
		ldns_rdf_deep_free(o);
		ldns_rdf_deep_free(rdata);
		return false;
	}
	ldns_rr_set_type(rr, type);
	ldns_rr_set_owner(rr, o);
	ldns_rr_set_ttl(rr, DNS_TTL);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_push_rdf(rr, rdata);
	if (!ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr)) {
		ldns_rr_free(rr);
		return false;
	}
	return true;
}

/* The records of a name we know: [CNAME requested -> stripped], then one A/AAAA per address. */
static ldns_pkt *build_answer(const ldns_pkt *q, const ldns_rdf *qname, const char *orig,
			      const struct alias *al, bool wildcard, const struct state_ip *ips,
			      size_t n)
{
	ldns_pkt *r = response_to(q, LDNS_RCODE_NOERROR);
	ldns_rdf *owner = NULL;
	bool ok = r != NULL;

	if (!r)
		return NULL;
	ldns_pkt_set_aa(r, true);	/* the mesh's names are ours */
	if (n && al->stripped >= 0 && !wildcard) {
		char target[DNS_NAME_MAX + 2];

		snprintf(target, sizeof(target), "%.*s.", al->stripped, orig);
		owner = ldns_dname_new_frm_str(target);
		ok = owner && push_record(r, qname, LDNS_RR_TYPE_CNAME, ldns_rdf_clone(owner));
	}
	for (size_t i = 0; ok && i < n; i++) {
		bool v4 = ips[i].family == AF_INET;
		ldns_rdf *rd = ldns_rdf_new_frm_data(v4 ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA,
						     v4 ? 4 : 16, v4 ? (const void *)&ips[i].v4 :
								       (const void *)&ips[i].v6);

		ok = push_record(r, owner ? owner : qname, v4 ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA,
				 rd);
	}
	ldns_rdf_deep_free(owner);
	if (!ok) {
		ldns_pkt_free(r);
		return NULL;
	}
	return r;
}

/* The question's name as text: orig keeps the client's case, low is lower case; both without
 * the trailing dot. false for names we never serve (the root, escaped bytes, too long). */
static bool question_name(const ldns_rdf *qname, char *orig, char *low)
{
	char *s = ldns_rdf2str(qname);
	size_t len;

	if (!s)
		return false;
	len = strlen(s);
	if (len && s[len - 1] == '.')
		s[--len] = '\0';
	if (!len || len >= DNS_NAME_MAX || strchr(s, '\\')) {
		free(s);
		return false;
	}
	memcpy(orig, s, len + 1);
	for (size_t i = 0; i <= len; i++)
		low[i] = (char)tolower((unsigned char)s[i]);
	free(s);
	return true;
}

static enum dns_verdict reply_with(ldns_pkt *r, size_t limit, uint8_t **reply, size_t *reply_len)
{
	enum dns_verdict v = DNS_DROP;

	if (r && encode(r, limit, reply, reply_len) == 0)
		v = DNS_REPLY;
	ldns_pkt_free(r);
	return v;
}

/* A and AAAA of names in the mesh; DNS_FORWARD for everything else. */
static enum dns_verdict lookup(const struct state_snapshot *snap, const struct dns_client *c,
			       const char *domain, const ldns_pkt *q, const ldns_rr *qrr,
			       size_t limit, uint8_t **reply, size_t *reply_len)
{
	char orig[DNS_NAME_MAX], low[DNS_NAME_MAX];
	struct state_ip ips[MAX_ADDRS];
	const struct state_service *svc;
	const struct state_workload *wl;
	const struct alias *al = NULL;
	struct aliases *a;
	bool wildcard = false;
	enum dns_verdict v;
	size_t n;
	int family = ldns_rr_get_type(qrr) == LDNS_RR_TYPE_A ? AF_INET : AF_INET6;

	if (!snap || !question_name(ldns_rr_owner(qrr), orig, low))
		return DNS_FORWARD;
	a = malloc(sizeof(*a));
	if (!a)
		return DNS_FORWARD;
	dns_aliases(low, c->namespace_ ? c->namespace_ : "", domain, a);
	svc = find_server(snap, a, c->namespace_ ? c->namespace_ : "", domain, &al, &wildcard);
	wl = svc ? NULL : find_workload(snap, a, c->namespace_ ? c->namespace_ : "", &al);
	if (!svc && !wl) {
		free(a);
		return DNS_FORWARD;
	}
	/* found: from here we are the authority. No address of the family (AAAA of a v4-only
	 * service, or IPv6 off): NOERROR without records, as upstream, never NXDOMAIN. */
	n = svc ? service_addrs(snap, svc, family, ips, MAX_ADDRS) :
		  workload_addrs(wl, family, ips, MAX_ADDRS);
	if (family == AF_INET6 && c->no_ipv6)
		n = 0;	/* upstream: with IPv6 off, no AAAA records (still NOERROR) */
	v = reply_with(build_answer(q, ldns_rr_owner(qrr), orig, al, wildcard, ips, n), limit,
		       reply, reply_len);
	free(a);
	return v;
}

enum dns_verdict dns_answer(const struct state_snapshot *snap, const struct dns_client *client,
			    const char *domain, const uint8_t *msg, size_t len, size_t limit,
			    uint8_t **reply, size_t *reply_len, struct dns_query_info *info)
{
	ldns_pkt *q = NULL;
	ldns_rr_list *qs;
	const ldns_rr *qrr;
	enum dns_verdict v;

	memset(info, 0, sizeof(*info));
	info->udp_limit = DNS_UDP_MIN;
	*reply = NULL;
	*reply_len = 0;
	if (len < LDNS_HEADER_SIZE || len > DNS_MAX_QUERY)
		return DNS_DROP;
	if (LDNS_QR_WIRE(msg))
		return DNS_DROP;	/* a response sent to us: never answered (no reflection) */
	info->id = LDNS_ID_WIRE(msg);
	if (ldns_wire2pkt(&q, msg, len) != LDNS_STATUS_OK)
		return DNS_DROP;
	if (ldns_pkt_edns(q) && ldns_pkt_edns_udp_size(q) > DNS_UDP_MIN)
		info->udp_limit = ldns_pkt_edns_udp_size(q);
	if (!limit)
		limit = info->udp_limit;
	qs = ldns_pkt_question(q);
	if (ldns_pkt_get_opcode(q) != LDNS_PACKET_QUERY) {
		v = reply_with(response_to(q, LDNS_RCODE_NOTIMPL), limit, reply, reply_len);
	} else if (!qs || ldns_rr_list_rr_count(qs) != 1) {
		v = reply_with(response_to(q, LDNS_RCODE_FORMERR), limit, reply, reply_len);
	} else {
		qrr = ldns_rr_list_rr(qs, 0);
		info->qtype = (uint16_t)ldns_rr_get_type(qrr);
		if (ldns_rr_get_class(qrr) != LDNS_RR_CLASS_IN ||
		    (info->qtype != LDNS_RR_TYPE_A && info->qtype != LDNS_RR_TYPE_AAAA))
			v = DNS_FORWARD;	/* other types: the upstream resolvers' */
		else
			v = lookup(snap, client, domain, q, qrr, limit, reply, reply_len);
	}
	ldns_pkt_free(q);
	return v;
}

int dns_error_reply(const uint8_t *msg, size_t len, int rcode, uint8_t **reply, size_t *reply_len)
{
	ldns_pkt *q = NULL;
	enum dns_verdict v;

	*reply = NULL;
	if (len < LDNS_HEADER_SIZE || ldns_wire2pkt(&q, msg, len) != LDNS_STATUS_OK)
		return -EINVAL;
	v = reply_with(response_to(q, (uint8_t)rcode), DNS_TCP_LIMIT, reply, reply_len);
	ldns_pkt_free(q);
	return v == DNS_REPLY ? 0 : -ENOMEM;
}

bool dns_is_answer(const uint8_t *msg, size_t len, uint16_t id, bool *truncated)
{
	if (len < LDNS_HEADER_SIZE || !LDNS_QR_WIRE(msg) || LDNS_ID_WIRE(msg) != id)
		return false;
	*truncated = LDNS_TC_WIRE(msg) != 0;
	return true;
}

const char *dns_qtype_name(uint16_t qtype)
{
	static const struct {
		uint16_t type;
		const char *name;
	} names[] = {
		{ LDNS_RR_TYPE_A, "a" }, { LDNS_RR_TYPE_AAAA, "aaaa" }, { LDNS_RR_TYPE_CNAME, "cname" },
		{ LDNS_RR_TYPE_SRV, "srv" }, { LDNS_RR_TYPE_PTR, "ptr" }, { LDNS_RR_TYPE_MX, "mx" },
		{ LDNS_RR_TYPE_TXT, "txt" }, { LDNS_RR_TYPE_NS, "ns" }, { LDNS_RR_TYPE_SOA, "soa" },
		{ LDNS_RR_TYPE_ANY, "any" }, { LDNS_RR_TYPE_HTTPS, "https" },
		{ LDNS_RR_TYPE_SVCB, "svcb" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == qtype)
			return names[i].name;
	return "unknown";
}
