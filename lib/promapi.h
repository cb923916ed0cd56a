/* promapi: one call to a Prometheus server's HTTP API (/api/v1/...) for
 * the prometheus-rules, prometheus-query and alert-drill probes: builds
 * the URL (base + path + percent-encoded parameters), sends it through
 * lib/http with the probe's headers and TLS options, and turns every way
 * it can go wrong (transport, status, body that is not JSON, a JSON that
 * is not the API's envelope, "status": "error") into one message that
 * says what happened and where. On success the callback gets `data`.
 *
 * It knows nothing about rules, queries or alerts. Loop thread only.
 */
#pragma once

#include <jansson.h>

#include "http.h"
#include "spec.h"

#define PROMAPI_DEFAULT_TIMEOUT_MS 10000
#define PROMAPI_MAX_BODY           (16 * 1024 * 1024)

struct promapi_call;

/* err 0: data is the envelope's "data" (borrowed for the call); message
 * NULL. err < 0: data NULL, message says what failed (borrowed). */
typedef void (*promapi_cb)(void *userdata, int err, json_t *data, const char *message);

/* GET {sp->prometheus}{path}?k1=v1&k2=v2... with params a NULL-terminated
 * list of key, value pairs (values encoded here; NULL params: none).
 * Headers, insecure and ca_file come from sp (borrowed only during this
 * call). *ret_call identifies the call for promapi_cancel() until cb runs.
 * Returns 0, -ENOMEM, or the -errno of http_request_start(). */
int promapi_get(struct http_client *c, const struct spec_probe *sp, const char *path,
                const char *const *params, int64_t timeout_ms, promapi_cb cb, void *userdata,
                struct promapi_call **ret_call);

/* Aborts a call; its callback will not run. NULL is fine. */
void promapi_cancel(struct promapi_call *call);
