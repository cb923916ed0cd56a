/* amapi: reading Alertmanager's answers for the alert drill. What
 * GET /api/v2/alerts (Alertmanager 0.25) says about the drilled alert:
 * whether it arrived, whether it is active or suppressed (by which
 * silences or inhibiting alerts), and which receivers its route reaches.
 * Pure functions of the JSON, without I/O, so recorded answers can be
 * tested on their own; the transport is promapi_get_json(). Any thread.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/spec/spec.h"

/* The drilled alert in an /api/v2/alerts answer: alerts whose labels
 * name the alert and hold every matcher exactly, that started no earlier
 * than not_before_ms (0: any). */
struct amapi_alert_state {
	/* "absent", "unprocessed", "active" or "suppressed" (static);
	 * of several matching alerts the most advanced: active, then
	 * suppressed, then unprocessed. */
	const char *state;
	size_t matching;
	json_t *alert;        /* that alert, borrowed or NULL */
	json_t *silenced_by;  /* its status.silencedBy (ids), borrowed or NULL */
	json_t *inhibited_by; /* its status.inhibitedBy (fingerprints), borrowed or NULL */
	const char *fingerprint;
};

/* Fills *ret from the answer. Returns 0, or -EPROTO when it is not a
 * list of alerts. */
int amapi_alert_state(json_t *alerts, const char *name, const struct spec_label *match,
                      size_t n_match, int64_t not_before_ms, struct amapi_alert_state *ret);

/* True when alert's receivers[] holds one named receiver. */
bool amapi_routed_to(json_t *alert, const char *receiver);

/* The names of alert's receivers as "a, b" (truncated to fit); "" for
 * none. */
void amapi_format_receivers(json_t *alert, char *buf, size_t len);

/* The strings of a JSON list as "a, b" (truncated to fit); "" for none. */
void amapi_format_list(json_t *list, char *buf, size_t len);
