/* docfetch: one document for a probe, from a local file (through the
 * operator's allowed_paths, lib/policy) or from a URL (through lib/net,
 * so allowed_targets applies), with a size cap. The dashboard and
 * scan-report probes read their input this way. Loop thread only.
 */
#pragma once

#include <stddef.h>

#include "lib/probe/probe.h"

struct docfetch;

/* err 0: buf (owned by the callee: free it) holds len bytes plus a NUL.
 * err < 0: buf NULL and why (borrowed) says what failed, naming the file
 * or the URL (credentials redacted). */
typedef void (*docfetch_cb)(void *userdata, int err, char *buf, size_t len, const char *why);

/* Reads file (when set) or GETs url with the probe's headers and TLS
 * options (sp->headers, insecure, ca_file). At most max bytes (a file:
 * also the policy's own cap). cb runs once, on the loop, unless
 * docfetch_cancel() came first. Returns 0 or -errno. */
int docfetch_start(struct probe *p, const char *file, const char *url, size_t max, docfetch_cb cb,
                   void *userdata, struct docfetch **ret);

/* The callback will not run. NULL is fine. */
void docfetch_cancel(struct docfetch *d);
