/* slowdns: an LD_PRELOAD shim for tests that makes one host name slow to
 * resolve. getaddrinfo() of the name in SLOWDNS_NAME answers as for
 * 127.0.0.1, after sleeping the seconds written in the file SLOWDNS_DELAY
 * names (none while the file is absent or empty). Every other lookup is
 * the C library's. Test-only: never linked into readyd. */
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static double delay_s(void)
{
	const char *path = getenv("SLOWDNS_DELAY");
	double s = 0;
	FILE *f;

	if (!path || !(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%lf", &s) != 1)
		s = 0;
	fclose(f);
	return s;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	static gai_fn real;
	const char *name = getenv("SLOWDNS_NAME");
	double s;

	if (!real)
		real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	if (node && name && strcmp(node, name) == 0) {
		s = delay_s();
		if (s > 0) {
			struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

			while (nanosleep(&ts, &ts) != 0)
				;
		}
		node = "127.0.0.1";
	}
	return real(node, service, hints, res);
}
