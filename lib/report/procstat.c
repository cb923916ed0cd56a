/* procstat: this process's CPU, memory, descriptors and start time from
 * /proc (see procstat.h). Fields of /proc/PID/stat are counted after the
 * command name's closing parenthesis, since the name may hold spaces and
 * parentheses itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/report/procstat.h"

/* Field numbers of proc(5) for /proc/PID/stat. */
#define F_UTIME     14
#define F_STIME     15
#define F_STARTTIME 22
#define F_VSIZE     23
#define F_RSS       24

int procstat_parse_stat(const char *text, long ticks, long page_size, double boot_time,
                        struct procstat *ret)
{
	const char *p = text ? strrchr(text, ')') : NULL;
	unsigned long long f[F_RSS + 1] = {0};
	int field = 3;
	char *end;

	if (!p || ticks <= 0 || page_size <= 0)
		return -EINVAL;
	p++;
	/* Field 3 is the state letter; the numbers of interest come after. */
	while (*p == ' ')
		p++;
	if (!*p)
		return -EINVAL;
	p++;
	for (field = 4; field <= F_RSS; field++) {
		if (*p != ' ')
			return -EINVAL;
		errno = 0;
		f[field] = (unsigned long long)strtoll(p + 1, &end, 10);
		if (end == p + 1 || errno)
			return -EINVAL;
		p = end;
	}
	ret->cpu_seconds = (double)(f[F_UTIME] + f[F_STIME]) / (double)ticks;
	ret->start_time_seconds = boot_time + (double)f[F_STARTTIME] / (double)ticks;
	ret->virtual_bytes = (double)f[F_VSIZE];
	ret->resident_bytes = (double)f[F_RSS] * (double)page_size;
	return 0;
}

static int read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	return 0;
}

static int boot_time(double *ret)
{
	char buf[16384], *p;
	int r = read_text("/proc/stat", buf, sizeof(buf));

	if (r < 0)
		return r;
	p = strstr(buf, "\nbtime ");
	if (!p)
		return -ENOENT;
	*ret = strtod(p + 7, NULL);
	return 0;
}

/* Entries of /proc/self/fd, less the one opendir() holds. */
static int open_fds(double *ret)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	*ret = n > 0 ? n - 1 : 0;
	return 0;
}

int procstat_read(struct procstat *ret)
{
	struct procstat ps = {0};
	struct rlimit rl;
	char buf[1024];
	double btime;
	int r;

	if ((r = read_text("/proc/self/stat", buf, sizeof(buf))) < 0 || (r = boot_time(&btime)) < 0)
		return r;
	r = procstat_parse_stat(buf, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), btime, &ps);
	if (r < 0 || (r = open_fds(&ps.open_fds)) < 0)
		return r;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	ps.max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
	*ret = ps;
	return 0;
}
