/* ca tool: the ca-fetch subcommand, one CreateCertificate call written out as PEM files. */
#include <errno.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ztunnel/ca.h"

#define CA_TOOL_USAGE                                                                        \
	"ca-fetch [--root-ca PEM] [--token FILE] [--cluster-id ID] [--ttl SECONDS]\n"        \
	"         [--timeout-ms MS] ADDRESS SPIFFE_ID CERT_OUT KEY_OUT ROOT_OUT"

bool ca_tool_handles(const char *subcommand)
{
	return subcommand && !strcmp(subcommand, "ca-fetch");
}

static int parse_num(const char *text, unsigned long max, unsigned long *out)
{
	char *end;

	if (!text || text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(text, &end, 10);
	return errno || *end || *out == 0 || *out > max ? -EINVAL : 0;
}

/* Options before the positional arguments; returns the index of the first positional, or -1. */
static int parse_opts(int argc, char **argv, struct ca_client_config *cfg)
{
	unsigned long v;
	int i;

	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (i + 1 >= argc)
			return -1;
		if (!strcmp(argv[i], "--root-ca")) {
			cfg->root_ca_path = argv[i + 1];
		} else if (!strcmp(argv[i], "--token")) {
			cfg->token_path = argv[i + 1];
		} else if (!strcmp(argv[i], "--cluster-id")) {
			cfg->cluster_id = argv[i + 1];
		} else if (!strcmp(argv[i], "--ttl") && !parse_num(argv[i + 1], 3650UL * 86400, &v)) {
			cfg->ttl_seconds = (unsigned)v;
		} else if (!strcmp(argv[i], "--timeout-ms") &&
			   !parse_num(argv[i + 1], 600000, &v)) {
			cfg->timeout_ms = (int)v;
		} else {
			return -1;
		}
	}
	return argc - i == 5 ? i : -1;
}

static int write_root(X509 *root, const char *path)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -errno;
	ok = PEM_write_X509(f, root) == 1;
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

int ca_tool_main(int argc, char **argv)
{
	struct ca_client_config cfg = { .cluster_id = "Kubernetes" };
	struct ca_client *client = NULL;
	struct tls_cert *cert = NULL;
	X509 *root = NULL;
	char err[1024];
	int i, code = 1;

	i = argc > 0 && argv && ca_tool_handles(argv[0]) ? parse_opts(argc, argv, &cfg) : -1;
	if (i < 0) {
		fprintf(stderr, "usage: %s\n", CA_TOOL_USAGE);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);	/* TLS writes to a CA that hung up (the agent does this too) */
	cfg.address = argv[i];
	client = ca_client_new(&cfg);
	if (!client) {
		fprintf(stderr, "ca-fetch: %s\n", strerror(errno));
		return 1;
	}
	cert = ca_client_issue(client, argv[i + 1], &root, err, sizeof(err));
	if (!cert) {
		fprintf(stderr, "ca-fetch: %s\n", err);
		goto out;
	}
	if (tls_cert_write(cert, argv[i + 2], argv[i + 3]) || write_root(root, argv[i + 4])) {
		fprintf(stderr, "ca-fetch: cannot write %s / %s / %s\n", argv[i + 2], argv[i + 3],
			argv[i + 4]);
		goto out;
	}
	printf("identity=%s not_before=%lld not_after=%lld intermediates=%d\n", cert->identity,
	       (long long)cert->not_before, (long long)cert->not_after, sk_X509_num(cert->chain));
	code = 0;
out:
	X509_free(root);
	tls_cert_free(&cert);
	ca_client_free(&client);
	return code;
}
