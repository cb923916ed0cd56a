/* fuzz-route: api_route() on arbitrary "METHOD PATH" (split at the first
 * space). The router sees raw request paths, so it must answer 0,
 * -ENOENT or -EPERM for anything; a match is a route of that method; a
 * -EPERM names the allowed methods; captures stay within their bounds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fuzz.h"

static void check_match(const char *method, const struct api_match *m)
{
	fuzz_check(m->route != NULL, "a match has a route");
	fuzz_check(strcmp(m->route->method, method) == 0, "the route is of the method asked");
	fuzz_check(strlen(m->name) <= API_NAME_MAX, "a {name} capture within its cap");
	if (strstr(m->route->pattern, "{id}"))
		fuzz_check(m->id >= 1, "an {id} capture is positive");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_match m;
	char allow[256];
	char *s = fuzz_strdup(data, size);
	const char *method = "GET", *path;
	char *sp;
	int r;

	if (!s)
		return 0;
	path = s;
	sp = strchr(s, ' ');
	if (sp) {
		*sp = '\0';
		method = s;
		path = sp + 1;
	}
	memset(&m, 0, sizeof(m));
	r = api_route(method, path, &m, allow, sizeof(allow));
	if (r == 0)
		check_match(method, &m);
	else if (r == -EPERM)
		fuzz_check(allow[0] != '\0', "a 405 names the allowed methods");
	else
		fuzz_check(r == -ENOENT, "api_route returns 0, -EPERM or -ENOENT");
	free(s);
	return 0;
}
