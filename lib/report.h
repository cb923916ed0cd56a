/* report: renders a stored run for people and machines. The input is the
 * run resource as store_run_get() returns it (plus its stored spec); the
 * output a new document. Pure: no store, no I/O; any thread (reports of
 * big runs may be rendered on a worker).
 */
#pragma once

#include <jansson.h>

/* The JSON report: the run, its (redacted) spec, a summary of gate and
 * checklist outcomes, and when it was generated. run and spec borrowed;
 * spec may be NULL. New reference, NULL on ENOMEM. */
json_t *report_json(json_t *run, json_t *spec);
