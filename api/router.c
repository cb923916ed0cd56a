/* router: method + path -> route, over the route tables of the resource
 * files. Paths are matched segment by segment; "{id}" captures a positive
 * decimal integer (anything else there is no match, so /v1/runs/abc is a
 * 404 rather than a 400 about a number); "{name}" a segment of
 * [A-Za-z0-9._-]{1,128} (service names), "{env}" the same (environment
 * names). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "lib/util/util.h"

static const struct api_route *const tables[] = {
        api_routes_health,       api_routes_runs,    api_routes_services, api_routes_gates,
        api_routes_events,       api_routes_metrics, api_routes_specs,    api_routes_hooks,
        api_routes_alertmanager, api_routes_console,
};

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Matches "{id}", "{name}" or "{env}" at *pattern against the segment at
 * *path. */
static bool match_capture(const char **pattern, const char **path, struct api_match *m)
{
	size_t n = strcspn(*path, "/");

	if (strncmp(*pattern, "{id}", 4) == 0) {
		char num[21];

		if (n == 0 || n >= sizeof(num))
			return false;
		memcpy(num, *path, n);
		num[n] = '\0';
		if (rd_parse_int64(num, 1, INT64_MAX, &m->id) < 0)
			return false;
		*pattern += 4;
	} else if (strncmp(*pattern, "{name}", 6) == 0 || strncmp(*pattern, "{env}", 5) == 0) {
		bool env = (*pattern)[1] == 'e';
		char *out = env ? m->env : m->name;

		if (n == 0 || n > API_NAME_MAX)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!name_char((*path)[i]))
				return false;
		memcpy(out, *path, n);
		out[n] = '\0';
		*pattern += env ? 5 : 6;
	} else {
		return false;
	}
	*path += n;
	return true;
}

/* Matches one path against a pattern, filling the captures. */
static bool match(const char *pattern, const char *path, struct api_match *m)
{
	while (*pattern && *path) {
		if (*pattern == '{') {
			if (!match_capture(&pattern, &path, m))
				return false;
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

int api_route(const char *method, const char *path, struct api_match *ret, char *allow,
              size_t allowlen)
{
	bool path_matched = false;
	struct api_match m;

	allow[0] = '\0';
	for (size_t t = 0; t < RD_ARRAY_SIZE(tables); t++) {
		for (const struct api_route *r = tables[t]; r->pattern; r++) {
			memset(&m, 0, sizeof(m));
			if (!match(r->pattern, path, &m))
				continue;
			if (strcmp(r->method, method) == 0) {
				m.route = r;
				*ret = m;
				return 0;
			}
			path_matched = true;
			add_allow(allow, allowlen, r->method);
		}
	}
	return path_matched ? -EPERM : -ENOENT;
}

void api_routes_foreach(void (*cb)(const struct api_route *route, void *userdata), void *userdata)
{
	for (size_t t = 0; t < RD_ARRAY_SIZE(tables); t++)
		for (const struct api_route *r = tables[t]; r->pattern; r++)
			cb(r, userdata);
}
