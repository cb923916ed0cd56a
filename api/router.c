/* router: method + path -> handler, over the route tables of the resource
 * files. Paths are matched segment by segment; "{id}" captures a positive
 * decimal integer (anything else there is no match, so /v1/runs/abc is a
 * 404 rather than a 400 about a number). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "util.h"

static const struct api_route *const tables[] = {
        api_routes_health,
        api_routes_runs,
};

/* Matches one path against a pattern; writes the captured id. */
static bool match(const char *pattern, const char *path, int64_t *ret_id)
{
	while (*pattern && *path) {
		if (strncmp(pattern, "{id}", 4) == 0) {
			char num[21];
			size_t n = strcspn(path, "/");
			int64_t id;

			if (n == 0 || n >= sizeof(num))
				return false;
			memcpy(num, path, n);
			num[n] = '\0';
			if (rd_parse_int64(num, 1, INT64_MAX, &id) < 0)
				return false;
			*ret_id = id;
			pattern += 4;
			path += n;
			continue;
		}
		if (*pattern != *path)
			return false;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

static void add_allow(char *allow, size_t len, const char *method)
{
	size_t used = strlen(allow);

	if (strstr(allow, method))
		return;
	snprintf(allow + used, len - used, "%s%s", used ? ", " : "", method);
}

int api_route(const char *method, const char *path, api_handler *ret_handler, int64_t *ret_id,
              char *allow, size_t allowlen)
{
	bool path_matched = false;
	int64_t id = 0;

	allow[0] = '\0';
	for (size_t t = 0; t < RD_ARRAY_SIZE(tables); t++) {
		for (const struct api_route *r = tables[t]; r->pattern; r++) {
			if (!match(r->pattern, path, &id))
				continue;
			if (strcmp(r->method, method) == 0) {
				*ret_handler = r->handler;
				*ret_id = id;
				return 0;
			}
			path_matched = true;
			add_allow(allow, allowlen, r->method);
		}
	}
	return path_matched ? -EPERM : -ENOENT;
}
