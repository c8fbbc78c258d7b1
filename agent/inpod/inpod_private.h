/* inpod private: ZDS socket I/O shared by the CNI server and the istio-cni client, pod lookups. */
#ifndef ZTUNNEL_INPOD_PRIVATE_H
#define ZTUNNEL_INPOD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ztunnel/inpod.h>

/*
 * Reads one ZDS message from fd without blocking. The first fd passed with it (SCM_RIGHTS) goes to
 * *netns_fd (owned by the caller; -1 when none), the others are closed; *nfds (may be NULL)
 * receives how many came. Returns the length, 0 at EOF, -EAGAIN, -EMSGSIZE for a truncated
 * message (its fds closed) or -errno.
 */
ssize_t zds_io_recv(int fd, uint8_t *buf, size_t cap, int *netns_fd, int *nfds);
/* Sends WorkloadResponse{ack{error}} (NULL or "": a positive ack). 0 or -errno. */
int zds_io_send_ack(int fd, const char *error);

/* True when uid is enrolled with the same network namespace as netns_fd (control thread). */
bool inpod_enrolled_in(struct inpod *ip, const char *uid, int netns_fd);

#endif
