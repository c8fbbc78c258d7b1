/* access: the per-connection record behind the "connection complete" access log line. */
#ifndef ZTUNNEL_ACCESS_H
#define ZTUNNEL_ACCESS_H

#include <stdint.h>
#include <sys/socket.h>

#include <ztunnel/tls.h>

enum access_direction { ACCESS_OUTBOUND, ACCESS_INBOUND };

/* Filled by the proxy as it learns things; strings empty when unknown. */
struct access_record {
	enum access_direction direction;
	struct sockaddr_storage src;		/* the client */
	struct sockaddr_storage dst;		/* the app's address */
	struct sockaddr_storage hbone;		/* the HBONE peer (port 15008); family 0 if none */
	char src_workload[128], src_namespace[64], src_identity[TLS_SPIFFE_MAX];
	char dst_workload[128], dst_namespace[64], dst_identity[TLS_SPIFFE_MAX];
	char dst_service[256];
	uint64_t bytes_sent;	/* towards the client */
	uint64_t bytes_recv;	/* from the client */
	uint64_t start_ms;
};

/* Formats "ip:port" (v6 as [ip]:port) into buf; "-" for an empty address. Returns buf. */
const char *access_addr(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Logs "connection complete" with upstream's keys; error NULL for a clean end. */
void access_log_complete(const struct access_record *rec, const char *error);

#endif
