/* config: readyd.yaml -> struct rd_config. Strict like the spec: unknown
 * keys and wrong types are errors with the path. The full reference is
 * docs/operations.md; examples/readyd.yaml is a commented example.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

#include "auth.h"
#include "lib/util/log.h"
#include "lib/policy/policy.h"
#include "lib/sched/sched.h"

#define RD_DEFAULT_LISTEN "127.0.0.1:7411"
#define RD_DEFAULT_DB     "./var/readyd.db"

struct rd_config {
	char *listen;
	char *database;
	enum rd_log_level log_level;
	size_t max_body;
	unsigned max_connections;
	size_t connection_memory;
	size_t cache_memory;         /* api.cache_memory: kept answers, bytes */
	unsigned per_ip_connections; /* api.max_connections_per_ip */
	unsigned idle_timeout_s;     /* api.idle_timeout */
	struct sched_config sched;
	int load_nice;    /* scheduler.load_nice: the load engine's threads */
	char *node_id;    /* NULL: hostname:port, known once listening */
	int64_t lease_ms; /* cluster leases (docs/scale-out.md) */
	int64_t shutdown_timeout_ms;
	bool shutdown_finish; /* shutdown.runs: finish (else interrupt) */

	/* operations and security (docs/security.md) */
	struct auth_token *tokens;
	size_t n_tokens;
	bool allow_unauthenticated; /* tokenless on a non-loopback address */
	bool public_metrics;        /* GET /metrics without a token */
	double rate_limit, rate_burst;
	json_t *allowed_targets;  /* the YAML list, for policy_new(); owned */
	json_t *allowed_paths;    /* the YAML list, for policy_set_paths(); owned */
	char *tls_cert, *tls_key; /* PEM file paths, or NULL */
	struct policy_limits limits;
	int64_t retention_raw_days; /* 0: keep raw data forever */
};

/* Fills cfg with defaults. */
void config_init(struct rd_config *cfg);

/* Reads path into cfg (over the defaults already there). Returns 0, or
 * -errno with a sentence in err ("readyd.yaml: scheduler.max_queued: must
 * be an integer from 1 to 100000"). */
int config_load(struct rd_config *cfg, const char *path, char *err, size_t errlen);

/* Sets a string field, replacing the old value. -ENOMEM only. */
int config_set_string(char **field, const char *value);

void config_deinit(struct rd_config *cfg);
