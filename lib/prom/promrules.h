/* promrules: validates Prometheus rule files (the YAML that
 * `rule_files:` loads) without promtool: the groups/rules structure,
 * unknown keys, unique group names, exactly one of `alert`/`record`, an
 * `expr`, `for`/`keep_firing_for`/`interval` as Prometheus durations,
 * labels and annotations as maps of strings with valid names. PromQL in
 * `expr` is not parsed (that needs Prometheus itself; the
 * prometheus-rules probe asks the server whether the loaded rules work).
 *
 * YAML is read through the spec module's converter (lib/spec/spec_yaml.h), so
 * the same refusals apply (aliases, duplicate keys, bombs, size caps).
 * Only promrules_check_file() does I/O (one bounded read).
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PROMRULES_MAX_BYTES  (1024 * 1024)
#define PROMRULES_MAX_ERRORS 100 /* more are counted, not listed */

struct promrules_stats {
	size_t groups, alerts, records;
	size_t errors; /* all of them, also those past PROMRULES_MAX_ERRORS */
};

/* Parses a Prometheus duration ("1h30m", "90s", "500ms", "0"; units y w d
 * h m s ms, each at most once, largest first). Returns 0 or -EINVAL. */
int promrules_parse_duration(const char *s, int64_t *ret_ms);

/* Validates len bytes of a rule file. On success (the file may still be
 * invalid) *ret_errors is a new JSON array of
 * {"path": "groups[0].rules[1].for", "line": 12, "group": "...",
 *  "rule": "...", "message": "..."} (line, group and rule when known) and
 * *ret_stats the counts. Returns 0 or -ENOMEM. Any thread. */
int promrules_check(const char *buf, size_t len, json_t **ret_errors,
                    struct promrules_stats *ret_stats);

/* Reads the file at path (at most PROMRULES_MAX_BYTES) and checks it.
 * Returns 0, -ENOMEM, -EFBIG (too large) or the -errno of open/read. */
int promrules_check_file(const char *path, json_t **ret_errors, struct promrules_stats *ret_stats);
