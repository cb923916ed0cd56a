/* aminbox: readyd as an Alertmanager receiver. The notifications
 * Alertmanager's webhook integration delivered to readyd (payload version
 * "4"), kept in memory in a bounded ring of the most recent ones, so an
 * alert drill can tell that its alert was not only firing and routed but
 * actually delivered, and operators can see what arrived. Nothing is
 * stored: a restart forgets them, and a drill only looks at what arrived
 * after its own trigger.
 *
 * The validator is a pure function of the bytes; it names the path of the
 * first bad field ("alerts[2].labels.severity"). api/ owns the HTTP side;
 * this module never sees a request. Main loop thread only (the ring), any
 * thread (aminbox_parse).
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/spec/spec.h"

#define AMINBOX_DEFAULT_CAPACITY 256               /* notifications kept */
#define AMINBOX_MAX_BODY         (256 * 1024)      /* bytes of one payload */
#define AMINBOX_MAX_ALERTS       1000              /* alerts in one payload */
#define AMINBOX_MAX_LABELS       128               /* labels (or annotations) of one alert */
#define AMINBOX_MAX_HELD_BYTES   (8 * 1024 * 1024) /* payload bytes held at once */

struct aminbox;

/* A ring of at most capacity notifications (0: the default). 0 or
 * -ENOMEM. */
int aminbox_new(size_t capacity, struct aminbox **ret_ib);
void aminbox_free(struct aminbox *ib); /* NULL is fine */

/* Where and why a payload is refused. path is "" for the whole body. */
struct aminbox_error {
	char path[256];
	char message[256];
};

/* Reads and checks one webhook payload: a JSON object with version "4",
 * status and every alert's status "firing" or "resolved", a non-empty
 * receiver, a groupKey, label and annotation maps of strings, and alerts
 * with labels (alertname among them) and an RFC 3339 startsAt. Keys
 * Alertmanager may add later are kept and ignored. *ret_payload is a new
 * reference. Returns 0, -EINVAL (err filled), -E2BIG past
 * AMINBOX_MAX_BODY, -ENOMEM. */
int aminbox_parse(const char *body, size_t len, json_t **ret_payload, struct aminbox_error *err);

/* Records a payload from aminbox_parse (stolen), bytes long as it
 * arrived, that arrived at mono_ms (uv_hrtime in ms) and wall_ms (ms since
 * the epoch), sent with the token named sender (NULL: none). The oldest
 * entries make room: at most the ring's capacity, and at most
 * AMINBOX_MAX_HELD_BYTES of payloads. Returns the notification's id (1, 2,
 * ...), or -ENOMEM (the payload is released). */
int64_t aminbox_add(struct aminbox *ib, json_t *payload, size_t bytes, const char *sender,
                    uint64_t mono_ms, int64_t wall_ms);

/* What an alert drill waits for: a firing alert named alertname whose
 * labels hold every matcher, delivered to one of receivers (a JSON list
 * of names; NULL: any), that arrived at or after since_mono_ms and
 * started no earlier than not_before_ms (ms since the epoch; 0: any). */
struct aminbox_query {
	const char *alertname;
	const struct spec_label *labels;
	size_t n_labels;
	json_t *receivers;
	uint64_t since_mono_ms;
	int64_t not_before_ms;
};

/* The first matching delivery. Strings are borrowed until the next
 * aminbox_add(). */
struct aminbox_match {
	int64_t id;
	uint64_t mono_ms;
	int64_t wall_ms;
	const char *receiver;
	const char *fingerprint; /* NULL when the payload had none */
	const char *group_key;
};

/* 0 with *ret filled, -ENOENT when nothing matches yet. */
int aminbox_find(const struct aminbox *ib, const struct aminbox_query *q,
                 struct aminbox_match *ret);

/* Deliveries to other receivers of alerts matching q otherwise, since
 * since_mono_ms: for the reason a drill gives. */
size_t aminbox_count_elsewhere(const struct aminbox *ib, const struct aminbox_query *q);

/* The newest notifications first, at most limit, with an id above
 * after_id: [{id, received_at, sender, payload}]. New reference, NULL on
 * -ENOMEM. */
json_t *aminbox_list(const struct aminbox *ib, size_t limit, int64_t after_id);

/* Notifications held now, and received since the start. */
size_t aminbox_held(const struct aminbox *ib);
int64_t aminbox_received(const struct aminbox *ib);
