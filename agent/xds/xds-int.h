/* xds/xds-int.h: private types of the xDS client: resource tables, conversion, limits. */
#ifndef ZTUNNEL_XDS_INT_H
#define ZTUNNEL_XDS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ztunnel/state.h>

#include "discovery.pb-c.h"

#define XDS_TYPE_ADDRESS "type.googleapis.com/istio.workload.Address"
#define XDS_TYPE_AUTHZ "type.googleapis.com/istio.security.Authorization"
#define XDS_ADS_PATH "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

/* Bounds on what the control plane may send: anything beyond is NACKed, never trusted. */
#define XDS_MAX_RESOURCES 200000	/* per type */
#define XDS_MAX_RESOURCE_BYTES (1 << 20)
#define XDS_MAX_NAME 1024		/* resource names and versions */
#define XDS_MAX_STRING 1024		/* any string field */
#define XDS_MAX_LIST 4096		/* any repeated field or map */

enum xds_kind { XDS_KIND_ADDRESS = 0, XDS_KIND_AUTHZ = 1, XDS_N_KINDS };

/* The type URL of a kind, and the kind of a type URL (-1 when unknown). */
const char *xds_kind_type_url(enum xds_kind kind);
int xds_kind_of(const char *type_url);

/* One resource as the control plane sent it: the Any's value bytes, kept to rebuild snapshots. */
struct xds_resource {
	char *name;	/* owned; NULL marks an empty slot */
	char *version;	/* owned */
	uint8_t *body;	/* owned, len bytes (may be NULL when len is 0) */
	size_t len;
};

/* Resources of one type by name: open addressing, linear probing, backward-shift deletion. */
struct xds_table {
	struct xds_resource *slots;	/* owned, cap entries (a power of two) */
	size_t cap;
	size_t n;
};

struct xds_resource *xds_table_get(const struct xds_table *t, const char *name);
/* Inserts or replaces name; copies every argument. 0 or -ENOMEM. */
int xds_table_put(struct xds_table *t, const char *name, const char *version, const uint8_t *body,
		  size_t len);
/* Removes name if present; returns whether it was. */
bool xds_table_remove(struct xds_table *t, const char *name);
void xds_table_clear(struct xds_table *t);

/*
 * Conversion of one resource body (the Any's value) into the snapshot: appends a workload,
 * a service or a policy to snap's arrays (each array has room: see xds_snapshot_build).
 * 0, -EINVAL with the problem in err, or -ENOMEM. Nothing is appended on failure.
 */
int xds_convert_address(const uint8_t *body, size_t len, struct state_snapshot *snap, char *err,
			size_t errlen);
int xds_convert_authz(const uint8_t *body, size_t len, struct state_snapshot *snap, char *err,
		      size_t errlen);
/* Checks that one resource converts (into a throw-away snapshot). Same returns. */
int xds_convert_check(enum xds_kind kind, const uint8_t *body, size_t len, char *err,
		      size_t errlen);

/* A new snapshot (refcount 1) from every resource of the tables; NULL with errno and err. */
struct state_snapshot *xds_snapshot_build(const struct xds_table tables[XDS_N_KINDS], char *err,
					  size_t errlen);

/*
 * Applies one DeltaDiscoveryResponse of kind to its table: every resource is checked first
 * (name, type, size, conversion); on any failure nothing changes and -EINVAL returns with a
 * message naming the resource (the NACK's error_detail). Then removals, then adds and updates.
 * 0, -EINVAL or -ENOMEM (the table may then be partly updated: the caller resets the stream).
 */
int xds_apply(struct xds_table *t, enum xds_kind kind,
	      const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *resp, char *err,
	      size_t errlen);

struct xds_config;
/* "ztunnel~<ip>~<pod>.<ns>~<ns>.svc.<domain>" into buf. */
void xds_node_id(const struct xds_config *cfg, char *buf, size_t len);

/* What one DeltaDiscoveryRequest carries besides its type. Strings are borrowed. */
struct xds_request {
	bool first;			/* the node and initial_resource_versions (from the table) */
	const char *nonce;		/* ACK/NACK of that response, or NULL */
	const char *error;		/* NACK reason (code 3 INVALID_ARGUMENT), or NULL */
	const char *const *subscribe;	/* resource_names_subscribe */
	size_t n_subscribe;
	const char *const *unsubscribe;	/* resource_names_unsubscribe */
	size_t n_unsubscribe;
};

/* Packs a DeltaDiscoveryRequest for kind into *out (malloc'd, caller frees); t may be NULL.
 * 0 or -ENOMEM. */
int xds_request_pack(const struct xds_config *cfg, const struct xds_table *t, enum xds_kind kind,
		     const struct xds_request *r, uint8_t **out, size_t *len);

/*
 * Names asked for on demand and not answered yet (upstream's "pending"), for one client. Not
 * locked: the client holds its lock around every call.
 */
#define XDS_MAX_DEMANDS 4096

struct xds_demands {
	char **names;		/* owned, n entries */
	bool *sent;		/* sent[i]: names[i] went out on the current stream */
	size_t n, cap;
};

/* Adds name: 1 when new (to be sent), 0 when already pending, -ENOSPC, -EINVAL or -ENOMEM. */
int xds_demands_add(struct xds_demands *d, const char *name);
bool xds_demands_pending(const struct xds_demands *d, const char *name);
/* Removes every pending name that resp answers (a resource's name or alias, or a removal) and
 * returns them (malloc'd array of owned strings, *n entries; NULL when none). */
char **xds_demands_answer(struct xds_demands *d,
			  const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *resp,
			  size_t *n);
/* The names not sent yet (all of them when all is true), marked sent; borrowed pointers, valid
 * until the next change. NULL when none. */
const char **xds_demands_to_send(struct xds_demands *d, bool all, size_t *n);
void xds_demands_clear(struct xds_demands *d);
void xds_names_free(char **names, size_t n);

/* Helpers shared by the converters (convert.c). */
int xds_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A copy of s, or NULL for an empty string. -EINVAL when longer than XDS_MAX_STRING. */
int xds_str(const char *s, char **out, const char *field, char *err, size_t errlen);
/* 4 or 16 bytes into an address; -EINVAL otherwise. */
int xds_ip(const ProtobufCBinaryData *b, struct state_ip *out, const char *field, char *err,
	   size_t errlen);
/* A uint32 port into 1..65535 (0 allowed when zero_ok). */
int xds_port(uint32_t v, bool zero_ok, uint16_t *out, const char *field, char *err, size_t errlen);
/* calloc of n elements, bounded by XDS_MAX_LIST; *out NULL when n is 0. */
int xds_array(size_t n, size_t size, void *out, const char *field, char *err, size_t errlen);

#endif
