/* infra_facts: the pure readers behind the `infrastructure` probe
 * (infra_facts.h): /proc/meminfo, nvidia-smi's csv, node_exporter samples
 * from exposition text or a Prometheus vector, and the facts as JSON. No
 * I/O; any thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/infra_facts.h"
#include "lib/util/util.h"

void infra_facts_init(struct infra_facts *f, char *const *mounts, size_t n_mounts)
{
	memset(f, 0, sizeof(*f));
	f->cpu_cores = f->memory_bytes = f->memory_available_bytes = NAN;
	f->n_mounts = n_mounts < INFRA_MAX_MOUNTS ? n_mounts : INFRA_MAX_MOUNTS;
	for (size_t i = 0; i < f->n_mounts; i++)
		f->mounts[i] = (struct infra_mount){
		        .path = mounts[i], .free_bytes = NAN, .total_bytes = NAN, .err = -ENOENT};
	f->n_gpus = -1;
	snprintf(f->gpu_error, sizeof(f->gpu_error), "not looked for");
}

/* "Key:   123 kB" -> bytes; -EINVAL. */
static int meminfo_value(const char *text, const char *key, double *ret)
{
	size_t klen = strlen(key);
	const char *line = text;
	char *end;
	double v;

	while (line && *line) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtod(line + klen + 1, &end);
			if (end == line + klen + 1 || !(v >= 0))
				return -EINVAL;
			while (*end == ' ')
				end++;
			*ret = strncmp(end, "kB", 2) == 0 ? v * 1024 : v;
			return 0;
		}
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	return -EINVAL;
}

int infra_facts_parse_meminfo(const char *text, double *ret_total, double *ret_available)
{
	double t, a;

	if (meminfo_value(text, "MemTotal", &t) < 0 || meminfo_value(text, "MemAvailable", &a) < 0)
		return -EINVAL;
	*ret_total = t;
	*ret_available = a;
	return 0;
}

/* "NVIDIA A100-SXM4-80GB, 81920, 81000" */
static int smi_line(const char *line, size_t len, struct infra_gpu *g)
{
	char buf[256], *c1, *c2, *end;
	double total, free_mib;

	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, line, len);
	buf[len] = '\0';
	c2 = strrchr(buf, ',');
	if (!c2)
		return -EINVAL;
	*c2 = '\0';
	c1 = strrchr(buf, ',');
	if (!c1)
		return -EINVAL;
	*c1 = '\0';
	total = strtod(c1 + 1, &end);
	if (end == c1 + 1 || !(total >= 0))
		return -EINVAL;
	free_mib = strtod(c2 + 1, &end);
	if (end == c2 + 1 || !(free_mib >= 0))
		return -EINVAL;
	snprintf(g->name, sizeof(g->name), "%.127s", buf);
	g->memory_bytes = total * 1048576;
	g->free_bytes = free_mib * 1048576;
	return 0;
}

int infra_facts_parse_nvidia_smi(const char *text, struct infra_facts *f)
{
	const char *line = text;
	int n = 0;

	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);

		while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
			len--;
		if (len && n < INFRA_MAX_GPUS && smi_line(line, len, &f->gpus[n++]) < 0) {
			f->n_gpus = -1;
			snprintf(f->gpu_error, sizeof(f->gpu_error),
			         "nvidia-smi printed a line that does not read: %.80s", line);
			return -EINVAL;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	f->n_gpus = n;
	f->gpu_error[0] = '\0';
	return 0;
}

static void add_cpu(struct infra_facts *f, const char *cpu)
{
	char *end;
	long c = cpu ? strtol(cpu, &end, 10) : -1;

	if (!cpu || end == cpu || *end || c < 0 || c >= INFRA_MAX_CPUS || f->cpu_seen[c])
		return;
	f->cpu_seen[c] = 1;
	f->cpu_cores = (isnan(f->cpu_cores) ? 0 : f->cpu_cores) + 1;
}

static struct infra_mount *mount_of(struct infra_facts *f, const char *mp)
{
	for (size_t i = 0; mp && i < f->n_mounts; i++)
		if (strcmp(f->mounts[i].path, mp) == 0)
			return &f->mounts[i];
	return NULL;
}

void infra_facts_add_sample(struct infra_facts *f, const char *name, infra_label_cb label,
                            void *userdata, double value)
{
	struct infra_mount *m;
	const char *mode;

	if (strcmp(name, "node_cpu_seconds_total") == 0) {
		mode = label(userdata, "mode");
		if (mode && strcmp(mode, "idle") == 0)
			add_cpu(f, label(userdata, "cpu"));
	} else if (strcmp(name, "node_memory_MemTotal_bytes") == 0) {
		f->memory_bytes = value;
	} else if (strcmp(name, "node_memory_MemAvailable_bytes") == 0) {
		f->memory_available_bytes = value;
	} else if (strcmp(name, "node_filesystem_avail_bytes") == 0) {
		if ((m = mount_of(f, label(userdata, "mountpoint")))) {
			m->free_bytes = value;
			m->err = 0;
		}
	} else if (strcmp(name, "node_filesystem_size_bytes") == 0) {
		if ((m = mount_of(f, label(userdata, "mountpoint"))))
			m->total_bytes = value;
	}
}

/* --- exposition text --- */

#define MAX_LABELS 16

struct sample_labels {
	char names[MAX_LABELS][64];
	char values[MAX_LABELS][512];
	int n;
};

static const char *text_label(void *userdata, const char *label)
{
	const struct sample_labels *l = userdata;

	for (int i = 0; i < l->n; i++)
		if (strcmp(l->names[i], label) == 0)
			return l->values[i];
	return NULL;
}

/* One quoted label value from *pp (after the opening quote), unescaped
 * into out; *pp after the closing quote. -EINVAL. */
static int read_quoted(const char **pp, const char *end, char *out, size_t outlen)
{
	const char *p = *pp;
	size_t n = 0;

	while (p < end && *p != '"') {
		char c = *p++;

		if (c == '\\' && p < end) {
			c = *p++;
			c = c == 'n' ? '\n' : c;
		}
		if (n + 1 < outlen)
			out[n++] = c;
	}
	if (p >= end)
		return -EINVAL;
	out[n] = '\0';
	*pp = p + 1;
	return 0;
}

/* {a="x",b="y"} from *pp ('{' already passed) to after '}'. -EINVAL. */
static int read_labels(const char **pp, const char *end, struct sample_labels *l)
{
	const char *p = *pp;

	l->n = 0;
	while (p < end && *p != '}') {
		const char *eq = memchr(p, '=', (size_t)(end - p));
		size_t klen;
		int i = l->n < MAX_LABELS ? l->n++ : MAX_LABELS - 1;

		if (!eq || eq + 1 >= end || eq[1] != '"')
			return -EINVAL;
		while (p < eq && (*p == ' ' || *p == ','))
			p++;
		klen = (size_t)(eq - p) < sizeof(l->names[i]) ? (size_t)(eq - p)
		                                              : sizeof(l->names[i]) - 1;
		memcpy(l->names[i], p, klen);
		l->names[i][klen] = '\0';
		p = eq + 2;
		if (read_quoted(&p, end, l->values[i], sizeof(l->values[i])) < 0)
			return -EINVAL;
		while (p < end && (*p == ',' || *p == ' '))
			p++;
	}
	if (p >= end)
		return -EINVAL;
	*pp = p + 1;
	return 0;
}

static void exposition_line(const char *line, const char *end, struct infra_facts *f,
                            struct sample_labels *l)
{
	const char *p = line;
	char name[256], num[64];
	size_t n;

	while (p < end && *p != '{' && *p != ' ')
		p++;
	n = (size_t)(p - line);
	if (n == 0 || n >= sizeof(name))
		return;
	memcpy(name, line, n);
	name[n] = '\0';
	l->n = 0;
	if (p < end && *p == '{' && (p++, read_labels(&p, end, l) < 0))
		return;
	while (p < end && *p == ' ')
		p++;
	n = (size_t)(end - p) < sizeof(num) ? (size_t)(end - p) : sizeof(num) - 1;
	memcpy(num, p, n);
	num[n] = '\0';
	infra_facts_add_sample(f, name, text_label, l, strtod(num, NULL));
}

int infra_facts_parse_exposition(const char *text, size_t len, struct infra_facts *f)
{
	struct sample_labels *l = malloc(sizeof(*l));
	const char *p = text, *end = text + len;

	if (!l)
		return -ENOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if (le > p && *p != '#')
			exposition_line(p, le, f, l);
		p = le + 1;
	}
	free(l);
	return 0;
}

/* --- a Prometheus vector --- */

static const char *json_label(void *userdata, const char *label)
{
	return json_string_value(json_object_get(userdata, label));
}

int infra_facts_parse_vector(json_t *data, struct infra_facts *f)
{
	json_t *res = json_object_get(data, "result"), *s;
	size_t i;

	if (!json_is_array(res) ||
	    strcmp(json_string_value(json_object_get(data, "resultType")) ?: "", "vector") != 0)
		return -EPROTO;
	json_array_foreach (res, i, s) {
		json_t *metric = json_object_get(s, "metric");
		const char *name = json_string_value(json_object_get(metric, "__name__"));
		const char *v = json_string_value(json_array_get(json_object_get(s, "value"), 1));

		if (name && v)
			infra_facts_add_sample(f, name, json_label, metric, strtod(v, NULL));
	}
	return 0;
}

/* --- as metrics and details --- */

static double gib(double bytes)
{
	return bytes / INFRA_GIB;
}

static json_t *mounts_json(const struct infra_facts *f, double *ret_min)
{
	json_t *a = json_array();

	*ret_min = f->n_mounts ? INFINITY : NAN;
	for (size_t i = 0; a && i < f->n_mounts; i++) {
		const struct infra_mount *m = &f->mounts[i];

		json_array_append_new(
		        a,
		        json_pack("{s:s, s:o, s:o, s:s?}", "mount", m->path, "free_gib",
		                  rd_json_number(gib(m->free_bytes)), "total_gib",
		                  rd_json_number(gib(m->total_bytes)), "error",
		                  m->err ? (m->err == -ENOENT ? "not reported" : strerror(-m->err))
		                         : NULL));
		/* One unknown mount makes the minimum unknown: no data is no pass. */
		*ret_min = isnan(m->free_bytes) || isnan(*ret_min) ? NAN
		           : gib(m->free_bytes) < *ret_min         ? gib(m->free_bytes)
		                                                   : *ret_min;
	}
	return a;
}

static json_t *gpus_json(const struct infra_facts *f, double *ret_mem, double *ret_free)
{
	json_t *a;

	*ret_mem = *ret_free = NAN;
	if (f->n_gpus < 0)
		return json_string("unavailable");
	a = json_array();
	for (int i = 0; a && i < f->n_gpus; i++) {
		const struct infra_gpu *g = &f->gpus[i];

		json_array_append_new(a, json_pack("{s:s, s:f, s:f}", "model", g->name,
		                                   "memory_gib", gib(g->memory_bytes),
		                                   "memory_free_gib", gib(g->free_bytes)));
		*ret_mem =
		        i == 0 || gib(g->memory_bytes) < *ret_mem ? gib(g->memory_bytes) : *ret_mem;
		*ret_free =
		        i == 0 || gib(g->free_bytes) < *ret_free ? gib(g->free_bytes) : *ret_free;
	}
	return a;
}

int infra_facts_json(const struct infra_facts *f, json_t **ret_metrics, json_t **ret_details)
{
	double disk_min, gpu_mem, gpu_free;
	json_t *mounts = mounts_json(f, &disk_min), *gpus = gpus_json(f, &gpu_mem, &gpu_free);
	json_t *m = json_pack("{s:o, s:o, s:o, s:o, s:o}", "cpu_cores",
	                      rd_json_number(f->cpu_cores), "memory_gib",
	                      rd_json_number(gib(f->memory_bytes)), "memory_available_gib",
	                      rd_json_number(gib(f->memory_available_bytes)), "disk_free_gib",
	                      rd_json_number(f->n_mounts ? gib(f->mounts[0].free_bytes) : NAN),
	                      "disk_free_gib_min", rd_json_number(disk_min));
	json_t *d = json_pack("{s:O, s:O}", "mounts", mounts, "gpu", gpus);

	if (m && f->n_gpus >= 0) {
		json_object_set_new(m, "gpu_count", json_integer(f->n_gpus));
		json_object_set_new(m, "gpu_memory_gib", rd_json_number(gpu_mem));
		json_object_set_new(m, "gpu_memory_free_gib", rd_json_number(gpu_free));
	}
	if (d && f->n_gpus < 0)
		json_object_set_new(d, "gpu_error", json_string(f->gpu_error));
	json_decref(mounts);
	json_decref(gpus);
	if (!m || !d) {
		json_decref(m);
		json_decref(d);
		return -ENOMEM;
	}
	*ret_metrics = m;
	*ret_details = d;
	return 0;
}
