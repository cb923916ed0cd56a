/* policy: where probes may send traffic (SSRF control) and the operator's
 * caps on what a spec may ask for. The allowlist (`allowed_targets` in
 * readyd.yaml) holds host names ("models.internal", "*.svc.local"),
 * addresses and CIDRs ("127.0.0.1", "10.0.0.0/8", "[fd00::/8]"), each
 * optionally with a port or port range (":8000-8100"). It is checked at
 * submit time for every URL of a spec (after resolving names, on the
 * libuv threadpool) and at run time for every connection, redirects
 * included (lib/http's policy hook).
 *
 * Link-local (169.254.0.0/16, fe80::/10), cloud metadata (fd00:ec2::254,
 * 100.100.100.200) and unspecified (0.0.0.0/8, ::) addresses are refused
 * unless an address or CIDR entry lists them: a host name entry never
 * unlocks them, so DNS cannot point an allowed name at a metadata service.
 * IPv6 forms that embed an IPv4 address (IPv4-mapped ::ffff:a.b.c.d,
 * IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d) are checked as that
 * IPv4 address; 6to4, Teredo and local-use NAT64 (64:ff9b:1::/48)
 * addresses are refused when an IPv4 address they may lead to is.
 * With no entries at all, every other address is allowed (the tokenless
 * quick start); docs/security.md says why production should list them.
 *
 * This module never opens a connection; it only answers questions.
 * Policies are immutable and reference counted, so a SIGHUP can swap in a
 * new one while checks against the old one finish. Main loop thread only
 * (policy_check_addr may be called from any thread on a live reference).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "lib/spec/spec.h"

#define POLICY_MAX_ENTRIES 1024

struct policy;
struct policy_check;

/* Builds a policy from entries, a JSON array of strings (borrowed; NULL
 * or [] allows every address but the refused ranges above). Returns 0, or
 * -EINVAL with a sentence naming the bad entry in err ("allowed_targets[2]:
 * ..."), or -ENOMEM. The new policy has one reference. */
int policy_new(json_t *entries, struct policy **ret_policy, char *err, size_t errlen);

/* Reference counting; unref of NULL is fine. */
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* True if the policy has no entries (allows all but the refused ranges). */
bool policy_is_open(const struct policy *p);

/* May a connection go to addr (port included)? host is the URL's host as
 * written (a name or an address literal), or NULL. 0 or -EPERM. */
int policy_check_addr(const struct policy *p, const struct sockaddr *addr, const char *host);

/* Splits an http(s) URL into host and port (default 80/443). 0, -EPROTO
 * for any other scheme, -EINVAL for a URL that does not parse. */
int policy_url_host_port(const char *url, char *host, size_t hostlen, int *ret_port);

/* The outcome of a spec check: err 0 (every URL allowed), -EPERM (path is
 * the offending field, e.g. "probes[2].url", message says why), or another
 * -errno. path and message are borrowed for the call. */
typedef void (*policy_check_cb)(void *userdata, int err, const char *path, const char *message);

/* Checks every URL of spec (the target's, and every probe field its
 * type's schema marks SPEC_FIELD_URL: url, prometheus, trigger.url, ...)
 * asynchronously: names are resolved with uv_getaddrinfo, never on the
 * loop. Then every local file it names (fields marked SPEC_FIELD_FILE:
 * ca_file, pid_file, rule_files, ...) against allowed_paths, opened on
 * the threadpool. cb is called exactly once, unless the
 * check is cancelled first; it may run before this returns (a spec without
 * host names). spec and p are borrowed until then (p is referenced).
 * *ret_check (optional) identifies the check for policy_check_cancel until
 * cb runs. Returns 0 or -ENOMEM. */
int policy_check_spec(uv_loop_t *loop, struct policy *p, const struct spec *spec,
                      policy_check_cb cb, void *userdata, struct policy_check **ret_check);

/* Stops a check: its callback will not run. Memory is released once a
 * pending resolution returns (run the loop). */
void policy_check_cancel(struct policy_check *c);

/* ---- local files (readyd.yaml `allowed_paths`) ----
 *
 * A spec names local files (ca_file, pid_file, rule_files). readyd reads
 * them only inside directories the operator lists; with none listed, no
 * file field is accepted. A path is resolved with realpath(3) (so '..' and
 * symlinks cannot leave the directories), must be a regular file (opened
 * with O_NONBLOCK, so a FIFO or device never blocks the open), is checked
 * against the listed directories (themselves resolved) again through the
 * opened descriptor, and is size-capped. Checked at submit
 * (policy_check_spec) and again whenever a probe reads the file.
 */

#define POLICY_MAX_PATHS     64
#define POLICY_MAX_FILE_SIZE (1024 * 1024) /* any file a spec names */

/* Sets the policy's allowed directories from dirs, a JSON array of
 * absolute paths (borrowed; NULL or [] allows no file). Only before the
 * policy is shared. Returns 0, -EINVAL with a sentence in err
 * ("allowed_paths[1]: ..."), or -ENOMEM. */
int policy_set_paths(struct policy *p, json_t *dirs, char *err, size_t errlen);

/* Reads the file at path (at most max bytes, max <= POLICY_MAX_FILE_SIZE)
 * if p allows it. BLOCKING: call it on a worker thread (uv_queue_work),
 * never on the loop. p may be NULL (no file is allowed). On success
 * *ret_buf is a new NUL-terminated buffer of *ret_len bytes. Returns 0,
 * or -EACCES (not under allowed_paths, or none listed), -EINVAL (not a
 * regular file), -EFBIG (over max), -ENOMEM or open's -errno, with a
 * sentence in why that never quotes the file's content. */
int policy_read_file(const struct policy *p, const char *path, size_t max, char **ret_buf,
                     size_t *ret_len, char *why, size_t whylen);

struct policy_file;

/* The outcome of policy_read_file_async: err 0 and buf (stolen: the
 * callee frees it) of len bytes, or -errno and why (borrowed). */
typedef void (*policy_file_cb)(void *userdata, int err, char *buf, size_t len, const char *why);

/* policy_read_file on the loop's threadpool; cb runs on the loop once,
 * unless cancelled first. p (may be NULL) is referenced until then; path
 * is copied. *ret_file (optional) is for policy_file_cancel until cb runs.
 * Returns 0 or -errno. Loop thread only. */
int policy_read_file_async(uv_loop_t *loop, struct policy *p, const char *path, size_t max,
                           policy_file_cb cb, void *userdata, struct policy_file **ret_file);

/* cb will not run; memory is released when the worker returns. NULL is
 * fine. */
void policy_file_cancel(struct policy_file *f);

/* Operator caps on a spec (readyd.yaml `limits:`); 0 means "no cap
 * beyond the spec module's own". */
struct policy_limits {
	int64_t max_spec_bytes;
	int64_t max_probes;
	int64_t max_run_duration_ms;   /* the spec's timeout */
	int64_t max_load_connections;  /* per load/capacity probe */
	double max_load_rate;          /* per load/capacity probe, req/s */
	int64_t max_probe_duration_ms; /* load/capacity duration */
};

/* Checks spec against limits. 0, or -EPERM with err's path and message
 * set (the field path, e.g. "probes[0].connections"). */
int policy_check_limits(const struct policy_limits *l, const struct spec *spec,
                        struct spec_error *err);
