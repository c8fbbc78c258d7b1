/* admin limits: the agent's file descriptor limit, raised at start-up, shown in /config_dump and
 * as process_open_fds / process_max_fds. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <ztunnel/log.h>

#include "admin-int.h"

/* A limit as a decimal number, or "unlimited". */
static const char *limit_text(rlim_t v, char *buf, size_t len)
{
	if (v == RLIM_INFINITY)
		return "unlimited";
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

int admin_raise_nofile(void)
{
	char soft[24], hard[24], was[24];
	struct rlimit rl;
	int err;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		err = -errno;
		log_warn("cannot read the file descriptor limit", "error=\"%s\"", strerror(-err));
		return err;
	}
	limit_text(rl.rlim_cur, was, sizeof(was));
	if (rl.rlim_cur != rl.rlim_max) {
		struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &raised) < 0) {
			err = -errno;
			log_warn("cannot raise the file descriptor limit", "soft=%s hard=%s error=\"%s\"",
				 was, limit_text(rl.rlim_max, hard, sizeof(hard)), strerror(-err));
			return err;
		}
		rl = raised;
	}
	log_info("file descriptor limit", "soft=%s hard=%s was=%s",
		 limit_text(rl.rlim_cur, soft, sizeof(soft)),
		 limit_text(rl.rlim_max, hard, sizeof(hard)), was);
	return 0;
}

static void json_limit(FILE *out, rlim_t v)
{
	if (v == RLIM_INFINITY)
		fputs("\"unlimited\"", out);
	else
		fprintf(out, "%llu", (unsigned long long)v);
}

void admin_limits_dump_json(FILE *out)
{
	struct rlimit rl;

	fputs("\"limits\":{", out);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		fputs("\"nofile\":{\"soft\":", out);
		json_limit(out, rl.rlim_cur);
		fputs(",\"hard\":", out);
		json_limit(out, rl.rlim_max);
		fputc('}', out);
	}
	fputc('}', out);
}

/* Open descriptors of the process, not counting the one that reads the list; -errno when it
 * cannot be read (EMFILE when the limit is reached). */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

void admin_limits_metrics(FILE *out)
{
	struct rlimit rl;
	long n = open_fds();

	if (n >= 0)
		fprintf(out, "# HELP process_open_fds Number of open file descriptors.\n"
			     "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", n);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		fprintf(out, "# HELP process_max_fds Maximum number of open file descriptors.\n"
			     "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
			(unsigned long long)rl.rlim_cur);
}
