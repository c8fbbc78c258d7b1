/* tls tool: the ca-init and cert-issue subcommands that write CA and workload PEM files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ztunnel/tls.h"

#define TOOL_DEFAULT_TD "cluster.local"
#define TOOL_DEFAULT_TTL 86400UL		/* upstream SECRET_TTL: 24 h */
#define TOOL_MAX_TTL (3650UL * 86400UL)	/* ten years, the generated CA's own lifetime */

struct tool_cmd {
	const char *name;
	int min_args, max_args;	/* counted without the subcommand itself */
	const char *usage;
	int (*run)(int argc, char **argv);
};

static int ca_init(int argc, char **argv)
{
	const char *td = argc > 3 ? argv[3] : TOOL_DEFAULT_TD;
	struct tls_ca *ca = tls_ca_generate(td);
	int ret;

	if (!ca) {
		fprintf(stderr, "ca-init: cannot generate a CA for trust domain '%s': %s\n", td,
			strerror(errno));
		return 1;
	}
	ret = tls_ca_write(ca, argv[1], argv[2]);
	if (ret)
		fprintf(stderr, "ca-init: writing %s / %s: %s\n", argv[1], argv[2], strerror(-ret));
	tls_ca_free(&ca);
	return ret ? 1 : 0;
}

/* A TTL in seconds, 1 .. TOOL_MAX_TTL, digits only. 0 or -EINVAL. */
static int parse_ttl(const char *text, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!text || text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || v == 0 || v > TOOL_MAX_TTL)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int cert_issue(int argc, char **argv)
{
	char err[512];
	struct tls_ca *ca = NULL;
	struct tls_cert *cert = NULL;
	unsigned ttl = TOOL_DEFAULT_TTL;
	int ret, code = 1;

	if (argc > 6 && parse_ttl(argv[6], &ttl)) {
		fprintf(stderr, "cert-issue: bad TTL_SECONDS '%s' (1..%lu)\n", argv[6], TOOL_MAX_TTL);
		return 2;
	}
	ca = tls_ca_load(argv[1], argv[2], err, sizeof(err));
	if (!ca) {
		fprintf(stderr, "cert-issue: %s\n", err);
		goto out;
	}
	cert = tls_ca_issue(ca, argv[3], ttl);
	if (!cert) {
		fprintf(stderr, "cert-issue: cannot issue '%s': %s\n", argv[3],
			errno == EINVAL ? "not spiffe://TD/ns/NS/sa/SA" : strerror(errno));
		goto out;
	}
	ret = tls_cert_write(cert, argv[4], argv[5]);
	if (ret) {
		fprintf(stderr, "cert-issue: writing %s / %s: %s\n", argv[4], argv[5],
			strerror(-ret));
		goto out;
	}
	code = 0;
out:
	tls_cert_free(&cert);
	tls_ca_free(&ca);
	return code;
}

static const struct tool_cmd tool_cmds[] = {
	{ "ca-init", 2, 3, "ca-init CERT_OUT KEY_OUT [TRUST_DOMAIN]", ca_init },
	{ "cert-issue", 5, 6, "cert-issue CA_CERT CA_KEY SPIFFE_ID CERT_OUT KEY_OUT [TTL_SECONDS]",
	  cert_issue },
};

static const struct tool_cmd *tool_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(tool_cmds) / sizeof(tool_cmds[0]); i++)
		if (!strcmp(tool_cmds[i].name, name))
			return &tool_cmds[i];
	return NULL;
}

bool tls_tool_handles(const char *subcommand)
{
	return tool_find(subcommand) != NULL;
}

int tls_tool_main(int argc, char **argv)
{
	const struct tool_cmd *cmd = argc > 0 && argv ? tool_find(argv[0]) : NULL;

	if (!cmd) {
		fprintf(stderr, "usage:\n");
		for (size_t i = 0; i < sizeof(tool_cmds) / sizeof(tool_cmds[0]); i++)
			fprintf(stderr, "  %s\n", tool_cmds[i].usage);
		return 2;
	}
	if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
		fprintf(stderr, "usage: %s\n", cmd->usage);
		return 2;
	}
	return cmd->run(argc, argv);
}
