/* aminbox: the notifications Alertmanager delivered to readyd's webhook
 * receiver (see aminbox.h): the strict reader of a version "4" payload
 * and the bounded ring the alert drill searches. Never logs, never
 * touches the network or the store.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/aminbox.h"
#include "lib/util/util.h"

struct entry {
	int64_t id;
	uint64_t mono_ms;
	int64_t wall_ms;
	char *sender;
	json_t *payload;
	size_t bytes;
};

struct aminbox {
	struct entry *ring;
	size_t cap, n, head; /* head: the slot the next entry takes */
	size_t bytes;        /* of the payloads held */
	int64_t last_id;
};

int aminbox_new(size_t capacity, struct aminbox **ret_ib)
{
	struct aminbox *ib = calloc(1, sizeof(*ib));

	if (!ib)
		return -ENOMEM;
	ib->cap = capacity ? capacity : AMINBOX_DEFAULT_CAPACITY;
	ib->ring = calloc(ib->cap, sizeof(*ib->ring));
	if (!ib->ring) {
		free(ib);
		return -ENOMEM;
	}
	*ret_ib = ib;
	return 0;
}

static void entry_clear(struct entry *e)
{
	free(e->sender);
	json_decref(e->payload);
	memset(e, 0, sizeof(*e));
}

void aminbox_free(struct aminbox *ib)
{
	if (!ib)
		return;
	for (size_t i = 0; i < ib->cap; i++)
		entry_clear(&ib->ring[i]);
	free(ib->ring);
	free(ib);
}

/* --- the payload --- */

__attribute__((format(printf, 3, 4))) static int bad(struct aminbox_error *err, const char *path,
                                                     const char *fmt, ...)
{
	va_list ap;

	snprintf(err->path, sizeof(err->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool is_status(const json_t *v)
{
	const char *s = json_string_value(v);

	return s && (strcmp(s, "firing") == 0 || strcmp(s, "resolved") == 0);
}

/* A map of label (or annotation) names to strings. */
static int check_map(const json_t *m, const char *path, bool required, struct aminbox_error *err)
{
	const char *k;
	json_t *v;
	char sub[256];

	if (!m)
		return required ? bad(err, path, "missing (a map of names to strings)") : 0;
	if (!json_is_object(m))
		return bad(err, path, "must be a map of names to strings");
	if (json_object_size(m) > AMINBOX_MAX_LABELS)
		return bad(err, path, "has %zu entries; at most %d are accepted",
		           json_object_size(m), AMINBOX_MAX_LABELS);
	json_object_foreach ((json_t *)m, k, v) {
		if (json_is_string(v))
			continue;
		snprintf(sub, sizeof(sub), "%s.%s", path, k);
		return bad(err, sub, "must be a string");
	}
	return 0;
}

static int check_string(const json_t *o, const char *key, const char *path, bool required,
                        struct aminbox_error *err)
{
	const json_t *v = json_object_get(o, key);
	char sub[256];

	snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", key);
	if (!v)
		return required ? bad(err, sub, "missing") : 0;
	if (!json_is_string(v))
		return bad(err, sub, "must be a string");
	return 0;
}

static int check_time(const json_t *o, const char *key, const char *path, bool required,
                      struct aminbox_error *err)
{
	const char *s = json_string_value(json_object_get(o, key));
	int64_t ms;
	char sub[256];
	int r = check_string(o, key, path, required, err);

	if (r < 0 || !s)
		return r;
	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (rd_time_parse(s, &ms) < 0)
		return bad(err, sub, "must be an RFC 3339 time");
	return 0;
}

static int check_alert(const json_t *a, const char *path, struct aminbox_error *err)
{
	char sub[256];
	int r;

	if (!json_is_object(a))
		return bad(err, path, "must be an object");
	snprintf(sub, sizeof(sub), "%s.status", path);
	if (!is_status(json_object_get(a, "status")))
		return bad(err, sub, "must be \"firing\" or \"resolved\"");
	snprintf(sub, sizeof(sub), "%s.labels", path);
	if ((r = check_map(json_object_get(a, "labels"), sub, true, err)) < 0)
		return r;
	if (!json_is_string(json_object_get(json_object_get(a, "labels"), "alertname")))
		return bad(err, sub, "has no alertname");
	snprintf(sub, sizeof(sub), "%s.annotations", path);
	if ((r = check_map(json_object_get(a, "annotations"), sub, false, err)) < 0)
		return r;
	if ((r = check_time(a, "startsAt", path, true, err)) < 0)
		return r;
	if ((r = check_time(a, "endsAt", path, false, err)) < 0)
		return r;
	if ((r = check_string(a, "generatorURL", path, false, err)) < 0)
		return r;
	return check_string(a, "fingerprint", path, false, err);
}

static int check_alerts(const json_t *alerts, struct aminbox_error *err)
{
	char path[64];
	size_t i;
	json_t *a;
	int r;

	if (!alerts)
		return bad(err, "alerts", "missing (a list of alerts)");
	if (!json_is_array(alerts))
		return bad(err, "alerts", "must be a list of alerts");
	if (json_array_size(alerts) == 0)
		return bad(err, "alerts", "is empty; a notification carries at least one alert");
	if (json_array_size(alerts) > AMINBOX_MAX_ALERTS)
		return bad(err, "alerts", "has %zu alerts; at most %d are accepted",
		           json_array_size(alerts), AMINBOX_MAX_ALERTS);
	json_array_foreach ((json_t *)alerts, i, a) {
		snprintf(path, sizeof(path), "alerts[%zu]", i);
		if ((r = check_alert(a, path, err)) < 0)
			return r;
	}
	return 0;
}

static int check_payload(const json_t *doc, struct aminbox_error *err)
{
	const char *version = json_string_value(json_object_get(doc, "version"));
	const char *receiver = json_string_value(json_object_get(doc, "receiver"));
	int r;

	if (!json_is_object(doc))
		return bad(err, "", "must be a JSON object (Alertmanager's webhook payload)");
	if (!version || strcmp(version, "4") != 0)
		return bad(err, "version", "must be \"4\" (the payload of Alertmanager's webhook)");
	if (!is_status(json_object_get(doc, "status")))
		return bad(err, "status", "must be \"firing\" or \"resolved\"");
	if (!receiver || !receiver[0])
		return bad(err, "receiver",
		           "must be the name of the receiver (a non-empty string)");
	if ((r = check_string(doc, "groupKey", "", true, err)) < 0 ||
	    (r = check_string(doc, "externalURL", "", false, err)) < 0 ||
	    (r = check_map(json_object_get(doc, "groupLabels"), "groupLabels", false, err)) < 0 ||
	    (r = check_map(json_object_get(doc, "commonLabels"), "commonLabels", false, err)) < 0 ||
	    (r = check_map(json_object_get(doc, "commonAnnotations"), "commonAnnotations", false,
	                   err)) < 0)
		return r;
	return check_alerts(json_object_get(doc, "alerts"), err);
}

int aminbox_parse(const char *body, size_t len, json_t **ret_payload, struct aminbox_error *err)
{
	json_error_t jerr;
	json_t *doc;
	int r;

	memset(err, 0, sizeof(*err));
	if (len > AMINBOX_MAX_BODY) {
		bad(err, "", "the payload is %zu bytes; at most %d are accepted", len,
		    AMINBOX_MAX_BODY);
		return -E2BIG;
	}
	doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc)
		return bad(err, "", "not JSON: %s (line %d)", jerr.text, jerr.line);
	r = check_payload(doc, err);
	if (r < 0) {
		json_decref(doc);
		return r;
	}
	*ret_payload = doc;
	return 0;
}

/* --- the ring --- */

/* The i-th entry from the oldest (0) held. */
static struct entry *nth_oldest(const struct aminbox *ib, size_t i)
{
	return &ib->ring[(ib->head + ib->cap - ib->n + i) % ib->cap];
}

static void drop_oldest(struct aminbox *ib)
{
	struct entry *e = nth_oldest(ib, 0);

	ib->bytes -= e->bytes;
	entry_clear(e);
	ib->n--;
}

int64_t aminbox_add(struct aminbox *ib, json_t *payload, size_t bytes, const char *sender,
                    uint64_t mono_ms, int64_t wall_ms)
{
	struct entry *e = &ib->ring[ib->head];
	char *who = sender ? strdup(sender) : NULL;

	if (sender && !who) {
		json_decref(payload);
		return -ENOMEM;
	}
	while (ib->n > 0 && (ib->n == ib->cap || ib->bytes + bytes > AMINBOX_MAX_HELD_BYTES))
		drop_oldest(ib);
	e->id = ++ib->last_id;
	e->mono_ms = mono_ms;
	e->wall_ms = wall_ms;
	e->sender = who;
	e->payload = payload;
	e->bytes = bytes;
	ib->bytes += bytes;
	ib->head = (ib->head + 1) % ib->cap;
	ib->n++;
	return e->id;
}

static bool labels_hold(const json_t *labels, const struct aminbox_query *q)
{
	const char *name = json_string_value(json_object_get(labels, "alertname"));

	if (!name || strcmp(name, q->alertname) != 0)
		return false;
	for (size_t i = 0; i < q->n_labels; i++) {
		const char *v = json_string_value(json_object_get(labels, q->labels[i].name));

		if (!v || strcmp(v, q->labels[i].value) != 0)
			return false;
	}
	return true;
}

/* The first firing alert of e matching q (receiver aside), or NULL. */
static json_t *matching_alert(const struct entry *e, const struct aminbox_query *q)
{
	json_t *a;
	size_t i;
	int64_t starts;

	if (e->mono_ms < q->since_mono_ms)
		return NULL;
	json_array_foreach (json_object_get(e->payload, "alerts"), i, a) {
		const char *st = json_string_value(json_object_get(a, "status"));

		if (!st || strcmp(st, "firing") != 0 ||
		    !labels_hold(json_object_get(a, "labels"), q))
			continue;
		if (q->not_before_ms > 0 &&
		    rd_time_parse(json_string_value(json_object_get(a, "startsAt")), &starts) ==
		            0 &&
		    starts < q->not_before_ms)
			continue; /* an earlier episode of the same alert */
		return a;
	}
	return NULL;
}

static bool receiver_is(const struct entry *e, json_t *receivers)
{
	const char *r = json_string_value(json_object_get(e->payload, "receiver"));
	size_t i;
	json_t *v;

	if (!receivers)
		return true;
	json_array_foreach (receivers, i, v)
		if (r && json_is_string(v) && strcmp(r, json_string_value(v)) == 0)
			return true;
	return false;
}

int aminbox_find(const struct aminbox *ib, const struct aminbox_query *q, struct aminbox_match *ret)
{
	for (size_t i = 0; i < ib->n; i++) {
		const struct entry *e = nth_oldest(ib, i);
		json_t *a = matching_alert(e, q);

		if (!a || !receiver_is(e, q->receivers))
			continue;
		*ret = (struct aminbox_match){
		        .id = e->id,
		        .mono_ms = e->mono_ms,
		        .wall_ms = e->wall_ms,
		        .receiver = json_string_value(json_object_get(e->payload, "receiver")),
		        .fingerprint = json_string_value(json_object_get(a, "fingerprint")),
		        .group_key = json_string_value(json_object_get(e->payload, "groupKey")),
		};
		return 0;
	}
	return -ENOENT;
}

size_t aminbox_count_elsewhere(const struct aminbox *ib, const struct aminbox_query *q)
{
	size_t n = 0;

	for (size_t i = 0; q->receivers && i < ib->n; i++) {
		const struct entry *e = nth_oldest(ib, i);

		if (matching_alert(e, q) && !receiver_is(e, q->receivers))
			n++;
	}
	return n;
}

static json_t *entry_json(const struct entry *e)
{
	char at[RD_TIME_LEN];

	rd_time_format(e->wall_ms, at);
	return json_pack("{s:I, s:s, s:s*, s:O}", "id", (json_int_t)e->id, "received_at", at,
	                 "sender", e->sender, "payload", e->payload);
}

json_t *aminbox_list(const struct aminbox *ib, size_t limit, int64_t after_id)
{
	json_t *arr = json_array();

	for (size_t i = ib->n; arr && i > 0 && json_array_size(arr) < limit; i--) {
		const struct entry *e = nth_oldest(ib, i - 1);

		if (e->id <= after_id)
			break;
		if (json_array_append_new(arr, entry_json(e)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

size_t aminbox_held(const struct aminbox *ib)
{
	return ib->n;
}

int64_t aminbox_received(const struct aminbox *ib)
{
	return ib->last_id;
}
