/* zds: upstream's ZDS enrollment messages (package istio.workload.zds) as protobuf bytes. */
#ifndef ZTUNNEL_ZDS_H
#define ZTUNNEL_ZDS_H

#include <stddef.h>
#include <stdint.h>

#define ZDS_VERSION_V1 1
#define ZDS_MAX_MESSAGE 8192	/* one SEQPACKET message never exceeds this */
#define ZDS_MAX_FIELD 254	/* longest uid, name, namespace or service account accepted */

enum zds_request_kind { ZDS_REQ_ADD = 1, ZDS_REQ_DEL = 2, ZDS_REQ_SNAPSHOT_SENT = 3, ZDS_REQ_KEEP = 5 };

/* WorkloadRequest{oneof add=1{uid=1, workload_info=2{name=1,namespace=2,service_account=3}},
 * del=2{uid=2}, snapshot_sent=3{}, keep=5{uid=1}} */
struct zds_request {
	enum zds_request_kind kind;
	char uid[ZDS_MAX_FIELD + 1];
	int has_info;
	char name[ZDS_MAX_FIELD + 1];
	char namespace_[ZDS_MAX_FIELD + 1];
	char service_account[ZDS_MAX_FIELD + 1];
};

/* Each encoder returns the encoded length, or -ENOSPC / -EINVAL. */
int zds_encode_hello(uint8_t *buf, size_t cap);	/* ZdsHello{version=1} */
int zds_encode_request(const struct zds_request *req, uint8_t *buf, size_t cap);
/* WorkloadResponse{ack=1{error=1}}; error NULL or "" is a positive ack. */
int zds_encode_ack(const char *error, uint8_t *buf, size_t cap);

/* Decoders: 0, or -EBADMSG for malformed bytes, -ENAMETOOLONG for an oversized field.
 * Unknown fields are skipped, as protobuf requires. */
int zds_decode_hello(const uint8_t *buf, size_t len, uint32_t *version);
int zds_decode_request(const uint8_t *buf, size_t len, struct zds_request *out);
/* error receives the Ack's error text ("" for a positive ack). */
int zds_decode_ack(const uint8_t *buf, size_t len, char *error, size_t errlen);

#endif
