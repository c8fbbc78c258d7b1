/* sk_msg: on the sockhash of in-pod legs, hands what one end sends straight into the receive
 * queue of the other end (BPF_F_INGRESS), skipping the loopback TCP stack. A socket takes the
 * TCP path instead while its peer is not paired yet or has more than queue_limit bytes unread
 * (TCP's window then holds the writer back: redirected bytes alone would not), and comes
 * back only once the peer read all it sent by TCP, so the receiver, which reads redirected
 * bytes first, always sees them in order. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/sockmap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 queue_limit = ZT_SM_QUEUE_LIMIT;

#define ZT_SK_USER_DATA_PTRMASK (~7ul)	/* sk_user_data carries flag bits (NOCOPY, BPF, PSOCK) */

/* Bytes redirected to sk and not read yet (its psock's ingress queue); ~0 if unknown. */
static __always_inline __u32 queued(struct sock *sk)
{
	struct sk_psock *psock;
	unsigned long ud;
	__u32 len;

	ud = (unsigned long)BPF_CORE_READ(sk, sk_user_data);
	psock = (struct sk_psock *)(ud & ZT_SK_USER_DATA_PTRMASK);
	if (!psock || bpf_core_read(&len, sizeof(len), &psock->msg_tot_len) < 0)
		return ~0u;
	return len;
}

/* The peer socket sock_ops recorded for this end, if it still is the other end of key. */
static __always_inline struct sock *peer_of(const struct zt_sock_key *key)
{
	__u64 *addr = bpf_map_lookup_elem(&zt_sm_peers, key);
	struct sock *sk;

	if (!addr)
		return NULL;
	sk = (struct sock *)*addr;
	if (BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr) != key->remote_ip4 ||
	    BPF_CORE_READ(sk, __sk_common.skc_daddr) != key->local_ip4 ||
	    BPF_CORE_READ(sk, __sk_common.skc_num) != key->remote_port ||
	    bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)) != key->local_port)
		return NULL;
	return sk;
}

/* The peer has read every byte this socket ever sent by TCP (redirected bytes move neither
 * sequence number), so nothing sent by TCP can still be behind a redirected byte. */
static __always_inline bool tcp_drained(struct tcp_sock *self, struct sock *peer_sk)
{
	struct tcp_sock *peer = (struct tcp_sock *)peer_sk;

	return BPF_CORE_READ(peer, copied_seq) == BPF_CORE_READ(self, write_seq);
}

/* Which path this message takes. */
static __always_inline __u32 choose(struct sk_msg_md *msg, const struct zt_sm_sock *st,
				    const struct zt_sock_key *key)
{
	struct sock *peer = peer_of(key);
	struct tcp_sock *self;

	self = bpf_skc_to_tcp_sock(msg->sk);
	if (!peer || !self) {
		zt_sm_count(ZT_SM_TCP_UNPAIRED, 1);
		return ZT_SM_PATH_TCP;
	}
	if (queued(peer) >= queue_limit) {
		zt_sm_count(ZT_SM_TCP_QUEUE_FULL, 1);
		return ZT_SM_PATH_TCP;
	}
	if (st->path == ZT_SM_PATH_TCP && !tcp_drained(self, peer)) {
		zt_sm_count(ZT_SM_TCP_DRAINING, 1);
		return ZT_SM_PATH_TCP;
	}
	return ZT_SM_PATH_REDIRECT;
}

SEC("sk_msg")
int zt_sk_msg(struct sk_msg_md *msg)
{
	struct zt_sock_key key = {
		.netns = bpf_get_netns_cookie(msg),
		.local_port = msg->local_port, .remote_port = bpf_ntohl(msg->remote_port),
	};
	struct zt_sock_key peer;
	struct zt_sm_sock *st;
	__u32 path;

	if (!zt_sm_addrs4(msg, &key.local_ip4, &key.remote_ip4))
		return SK_PASS;	/* sock_ops never pairs such a socket */
	peer = zt_sm_peer(&key);

	st = bpf_sk_storage_get(&zt_sm_socks, msg->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {	/* cannot remember a switch to TCP: never leave TCP then */
		zt_sm_count(ZT_SM_MSGS_TCP, 1);
		return SK_PASS;
	}
	path = choose(msg, st, &key);
	if (path == ZT_SM_PATH_REDIRECT &&
	    bpf_msg_redirect_hash(msg, &zt_socks, &peer, BPF_F_INGRESS) != SK_PASS)
		path = ZT_SM_PATH_TCP;	/* the peer left meanwhile */
	if (path != st->path) {
		zt_sm_count(path == ZT_SM_PATH_TCP ? ZT_SM_TO_TCP : ZT_SM_TO_REDIRECT, 1);
		st->path = path;
	}
	if (path == ZT_SM_PATH_TCP) {
		zt_sm_count(ZT_SM_MSGS_TCP, 1);
		return SK_PASS;
	}
	zt_sm_count(ZT_SM_MSGS_REDIRECTED, 1);
	zt_sm_count(ZT_SM_BYTES_REDIRECTED, msg->size);
	return SK_PASS;
}
