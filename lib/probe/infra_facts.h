/* infra_facts: the facts the `infrastructure` probe reports about a host
 * (cores, memory, free disk per mount point, GPUs) and the pure readers
 * that fill them from text: /proc/meminfo, `nvidia-smi
 * --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits`,
 * and node_exporter samples, whether read from its /metrics text or from
 * a Prometheus query answer. No I/O; any thread. The probe
 * (probe_infrastructure.c) does the reading.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define INFRA_MAX_MOUNTS 32
#define INFRA_MAX_GPUS   64
#define INFRA_MAX_CPUS   8192
#define INFRA_GIB        1073741824.0

struct infra_mount {
	const char *path;   /* borrowed from the spec */
	double free_bytes;  /* available to unprivileged users (df's Avail); NaN: unknown */
	double total_bytes; /* NaN: unknown */
	int err;            /* -errno of statvfs, 0 */
};

struct infra_gpu {
	char name[128];
	double memory_bytes, free_bytes;
};

struct infra_facts {
	double cpu_cores; /* NaN: unknown */
	double memory_bytes, memory_available_bytes;
	struct infra_mount mounts[INFRA_MAX_MOUNTS];
	size_t n_mounts;
	int n_gpus; /* -1: GPUs unavailable (gpu_error says why) */
	struct infra_gpu gpus[INFRA_MAX_GPUS];
	char gpu_error[160];
	unsigned char cpu_seen[INFRA_MAX_CPUS]; /* node_exporter: `cpu` labels seen */
};

/* Empties f: every number unknown, the mounts (borrowed, at most
 * INFRA_MAX_MOUNTS) listed with unknown values, GPUs unavailable. */
void infra_facts_init(struct infra_facts *f, char *const *mounts, size_t n_mounts);

/* MemTotal and MemAvailable of /proc/meminfo text, in bytes. 0, or
 * -EINVAL when either is missing or malformed. */
int infra_facts_parse_meminfo(const char *text, double *ret_total, double *ret_available);

/* The lines of nvidia-smi's csv (name, total MiB, free MiB) into f's GPUs
 * (n_gpus set, even to 0). 0, or -EINVAL for a line that does not read
 * (gpu_error says which). */
int infra_facts_parse_nvidia_smi(const char *text, struct infra_facts *f);

/* One node_exporter sample: name, a label reader, its value. The families
 * read: node_cpu_seconds_total (one `cpu` label per core, counted on
 * mode="idle"), node_memory_MemTotal_bytes, node_memory_MemAvailable_bytes,
 * node_filesystem_avail_bytes and node_filesystem_size_bytes (by
 * `mountpoint`, for the listed mounts). Others are ignored. */
typedef const char *(*infra_label_cb)(void *userdata, const char *label);
void infra_facts_add_sample(struct infra_facts *f, const char *name, infra_label_cb label,
                            void *userdata, double value);

/* Feeds every sample line of an exposition text (0.0.4 or OpenMetrics,
 * already checked by promtext) to infra_facts_add_sample. 0 or -ENOMEM. */
int infra_facts_parse_exposition(const char *text, size_t len, struct infra_facts *f);

/* Feeds a Prometheus instant vector (an /api/v1/query answer's data) to
 * infra_facts_add_sample. 0, or -EPROTO when data is not a vector. */
int infra_facts_parse_vector(json_t *data, struct infra_facts *f);

/* The facts as metrics and details (GiB; docs/spec.md `infrastructure`).
 * New references in *ret_metrics and *ret_details. 0 or -ENOMEM. */
int infra_facts_json(const struct infra_facts *f, json_t **ret_metrics, json_t **ret_details);
