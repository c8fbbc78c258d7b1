/* config-int.h: what config.c and derive.c share. */
#ifndef ZTUNNEL_CONFIG_INT_H
#define ZTUNNEL_CONFIG_INT_H

#include <limits.h>

#include <ztunnel/config.h>

/* a numeric setting the environment did not give (outside every setting's bounds) */
#define CONFIG_UNSET UINT_MAX

/* The cores this process may run on (its affinity, which a cpuset limits). */
unsigned config_usable_cores(void);

/* Completes cfg after the table was read: upstream's precedence and in-cluster defaults
 * (ISTIO_META_CLUSTER_ID, RUST_LOG, KUBERNETES_SERVICE_HOST, the drain deadline, the worker
 * count). 0, or -EINVAL with "VARIABLE: what is wrong" in err. */
int config_derive(struct config *cfg, char *err, size_t len);

/* The log level in a RUST_LOG value ("info", "ztunnel=debug", "warn,ztunnel::proxy=trace"):
 * the most verbose directive for the ztunnel target, else the bare level, else info; trace
 * reads as debug and off as error. *level is one of error, warn, info, debug. 0 or -EINVAL. */
int config_rust_log_level(const char *rust_log, const char **level, char *err, size_t len);

#endif
