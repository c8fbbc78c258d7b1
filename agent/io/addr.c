/* io addr: socket address helpers shared by the listeners, the proxy and the DNS proxy. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/addr.h>

bool io_addr_unmap(struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *in6 = (const void *)ss;
	struct sockaddr_in in;

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		return false;
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = in6->sin6_port;
	memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &in, sizeof(in));
	return true;
}

bool io_addr_map(struct sockaddr_storage *ss)
{
	const struct sockaddr_in *in = (const void *)ss;
	struct sockaddr_in6 in6;

	if (ss->ss_family != AF_INET)
		return false;
	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	in6.sin6_port = in->sin_port;
	in6.sin6_addr.s6_addr[10] = 0xff;
	in6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&in6.sin6_addr.s6_addr[12], &in->sin_addr, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &in6, sizeof(in6));
	return true;
}

socklen_t io_addr_len(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return sizeof(struct sockaddr_in);
	if (ss->ss_family == AF_INET6)
		return sizeof(struct sockaddr_in6);
	return 0;
}

bool io_addr_ipv6_supported(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return errno != EAFNOSUPPORT;
	close(fd);
	return true;
}
