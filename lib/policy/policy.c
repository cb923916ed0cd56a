/* policy: the allowlist of probe targets and the operator's spec limits
 * (see policy.h). Answers "may traffic go there?" and "is this spec within
 * bounds?"; it never connects anywhere and never logs above debug. Name
 * resolution for submit-time checks runs on libuv's threadpool
 * (uv_getaddrinfo) so a slow resolver never stalls the loop.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/policy/policy.h"
#include "lib/probe/probe.h"
#include "lib/spec/spec_schema.h"
#include "lib/util/util.h"

#define HOST_MAX 253

struct net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

struct entry {
	bool is_net;
	struct net net;
	char *host;    /* lower case; for "*.x", ".x" with wildcard set */
	bool wildcard; /* matches any name ending in host */
	int port_lo, port_hi;
};

struct policy {
	int refs;
	struct entry *entries;
	size_t n_entries;
	char **paths; /* allowed_paths as written (resolved when used) */
	size_t n_paths;
};

/* Addresses no spec reaches unless an address entry lists them: they
 * are where cloud credentials live, or they mean "this host". */
static const char *const refused_ranges[] = {
        "169.254.0.0/16",     "fe80::/10", "fd00:ec2::254/128",
        "100.100.100.200/32", "0.0.0.0/8", "::/128",
};

/* ---- parsing entries ---- */

static int parse_net(const char *s, struct net *ret)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	struct net net = {0};
	int64_t prefix;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, net.addr) == 1)
		net.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, net.addr) == 1)
		net.family = AF_INET6;
	else
		return -EINVAL;
	net.prefix = net.family == AF_INET ? 32 : 128;
	if (slash) {
		if (rd_parse_int64(slash + 1, 0, net.prefix, &prefix) < 0)
			return -EINVAL;
		net.prefix = (int)prefix;
	}
	*ret = net;
	return 0;
}

static bool valid_host_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > HOST_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
			return false;
	return true;
}

static int parse_ports(const char *s, int *ret_lo, int *ret_hi)
{
	const char *dash = strchr(s, '-');
	char lo[8];
	int64_t a, b;
	size_t n = dash ? (size_t)(dash - s) : strlen(s);

	if (n == 0 || n >= sizeof(lo))
		return -EINVAL;
	memcpy(lo, s, n);
	lo[n] = '\0';
	if (rd_parse_int64(lo, 1, 65535, &a) < 0)
		return -EINVAL;
	b = a;
	if (dash && (rd_parse_int64(dash + 1, 1, 65535, &b) < 0 || b < a))
		return -EINVAL;
	*ret_lo = (int)a;
	*ret_hi = (int)b;
	return 0;
}

/* Splits "HOST[:PORTS]", "[V6[/LEN]][:PORTS]" or a bare "V6[/LEN]" into
 * host (into buf) and the port part (NULL: any port). */
static int split_entry(const char *s, char *buf, size_t buflen, const char **ret_ports)
{
	const char *end, *ports = NULL;
	size_t n;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		ports = end[1] ? end + 2 : NULL;
		s++;
	} else {
		const char *colon = strchr(s, ':');

		if (colon && strchr(colon + 1, ':'))
			end = s + strlen(s); /* a bare IPv6 address: no port */
		else if (colon)
			end = colon, ports = colon + 1;
		else
			end = s + strlen(s);
	}
	n = (size_t)(end - s);
	if (n == 0 || n >= buflen)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*ret_ports = ports;
	return 0;
}

static int parse_entry(const char *s, struct entry *e)
{
	char host[HOST_MAX + 3];
	const char *ports;

	if (split_entry(s, host, sizeof(host), &ports) < 0)
		return -EINVAL;
	e->port_lo = 1;
	e->port_hi = 65535;
	if (ports && parse_ports(ports, &e->port_lo, &e->port_hi) < 0)
		return -EINVAL;
	if (parse_net(host, &e->net) == 0) {
		e->is_net = true;
		return 0;
	}
	if (strncmp(host, "*.", 2) == 0) {
		e->wildcard = true;
		if (!valid_host_name(host + 2))
			return -EINVAL;
		memmove(host, host + 1, strlen(host)); /* keep the dot: ".x" */
	} else if (!valid_host_name(host)) {
		return -EINVAL;
	}
	for (char *c = host; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	e->host = strdup(host);
	return e->host ? 0 : -ENOMEM;
}

static void policy_free(struct policy *p)
{
	for (size_t i = 0; i < p->n_paths; i++)
		free(p->paths[i]);
	free(p->paths);
	for (size_t i = 0; i < p->n_entries; i++)
		free(p->entries[i].host);
	free(p->entries);
	free(p);
}

int policy_new(json_t *entries, struct policy **ret_policy, char *err, size_t errlen)
{
	struct policy *p = calloc(1, sizeof(*p));
	size_t n = json_array_size(entries), i;
	json_t *v;
	int r = 0;

	if (!p)
		return -ENOMEM;
	p->refs = 1;
	if (entries && !json_is_array(entries)) {
		snprintf(err, errlen,
		         "allowed_targets: must be a list of hosts, addresses or CIDRs");
		r = -EINVAL;
		goto out;
	}
	if (n > POLICY_MAX_ENTRIES) {
		snprintf(err, errlen, "allowed_targets: at most %d entries", POLICY_MAX_ENTRIES);
		r = -EINVAL;
		goto out;
	}
	p->entries = calloc(n + 1, sizeof(*p->entries));
	if (!p->entries) {
		r = -ENOMEM;
		goto out;
	}
	json_array_foreach (entries, i, v) {
		r = json_is_string(v) ? parse_entry(json_string_value(v), &p->entries[i]) : -EINVAL;
		p->n_entries = i + 1;
		if (r < 0) {
			snprintf(err, errlen,
			         "allowed_targets[%zu]: must be HOST, *.DOMAIN, ADDRESS or CIDR, "
			         "optionally with :PORT or :LOW-HIGH (IPv6 in brackets)",
			         i);
			goto out;
		}
	}
out:
	if (r < 0) {
		policy_free(p);
		return r;
	}
	*ret_policy = p;
	return 0;
}

struct policy *policy_ref(struct policy *p)
{
	if (p)
		p->refs++;
	return p;
}

void policy_unref(struct policy *p)
{
	if (p && --p->refs == 0)
		policy_free(p);
}

bool policy_is_open(const struct policy *p)
{
	return p->n_entries == 0;
}

/* ---- matching ---- */

/* IPv6 forms whose low 32 bits are an IPv4 address the packet ends up
 * at: IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96, but not :: and
 * ::1, which are IPv6's own) and the well-known NAT64 prefix
 * (64:ff9b::/96, RFC 6052). Such an address is checked as that IPv4
 * address, so [::a9fe:a9fe] is 169.254.169.254. */
static bool embeds_v4_low32(const unsigned char a[16])
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const unsigned char zero[12] = {0};

	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return true;
	return memcmp(a, zero, 12) == 0 && (a[12] | a[13] | a[14] | (a[15] & 0xfe)) != 0;
}

/* addr as family + bytes (an embedded IPv4 form counts as IPv4). */
static int addr_of(const struct sockaddr *sa, struct net *ret, int *ret_port)
{
	memset(ret, 0, sizeof(*ret));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		ret->family = AF_INET;
		memcpy(ret->addr, &in->sin_addr, 4);
		*ret_port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		*ret_port = ntohs(in6->sin6_port);
		if (embeds_v4_low32(in6->sin6_addr.s6_addr)) {
			ret->family = AF_INET;
			memcpy(ret->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			ret->family = AF_INET6;
			memcpy(ret->addr, in6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

static bool net_contains(const struct net *net, const struct net *a)
{
	int full = net->prefix / 8, rest = net->prefix % 8;

	if (net->family != a->family)
		return false;
	if (memcmp(net->addr, a->addr, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((net->addr[full] ^ a->addr[full]) & (0xff << (8 - rest))) == 0;
}

static bool in_refused_ranges(const struct net *a)
{
	struct net net;

	for (size_t i = 0; i < RD_ARRAY_SIZE(refused_ranges); i++)
		if (parse_net(refused_ranges[i], &net) == 0 && net_contains(&net, a))
			return true;
	return false;
}

static void v4_at(const unsigned char *a, size_t i0, size_t i1, size_t i2, size_t i3,
                  struct net *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = AF_INET;
	ret->prefix = 32;
	ret->addr[0] = a[i0];
	ret->addr[1] = a[i1];
	ret->addr[2] = a[i2];
	ret->addr[3] = a[i3];
}

/* IPv4 addresses other IPv6 transition forms may lead to: 6to4
 * (2002::/16, the relay's IPv4 in bits 16-47), Teredo (2001::/32, the
 * client's IPv4 inverted in the low 32 bits) and the local-use NAT64
 * prefix 64:ff9b:1::/48 (RFC 8215), whose IPv4 sits where the operator's
 * prefix length puts it (RFC 6052: /48, /56, /64 or /96). Returns how
 * many were written. */
static size_t transition_v4(const struct net *a, struct net out[4])
{
	const unsigned char *b = a->addr;
	static const unsigned char local_nat64[6] = {0, 0x64, 0xff, 0x9b, 0, 1};

	if (a->family != AF_INET6)
		return 0;
	if (b[0] == 0x20 && b[1] == 0x02) {
		v4_at(b, 2, 3, 4, 5, &out[0]);
		return 1;
	}
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) {
		v4_at(b, 12, 13, 14, 15, &out[0]);
		for (int i = 0; i < 4; i++)
			out[0].addr[i] ^= 0xff;
		return 1;
	}
	if (memcmp(b, local_nat64, 6) != 0)
		return 0;
	v4_at(b, 12, 13, 14, 15, &out[0]); /* /96 */
	v4_at(b, 9, 10, 11, 12, &out[1]);  /* /64 (bits 64-71 are zero) */
	v4_at(b, 7, 9, 10, 11, &out[2]);   /* /56 */
	v4_at(b, 6, 7, 9, 10, &out[3]);    /* /48 */
	return 4;
}

/* A refused range stays refused when reached through a translation
 * prefix: any IPv4 address the IPv6 one may lead to counts. */
static bool is_refused_range(const struct net *a)
{
	struct net v4[4];
	size_t n = transition_v4(a, v4);

	if (in_refused_ranges(a))
		return true;
	for (size_t i = 0; i < n; i++)
		if (in_refused_ranges(&v4[i]))
			return true;
	return false;
}

static bool host_matches(const struct entry *e, const char *host)
{
	size_t hl, el;

	if (!host)
		return false;
	if (!e->wildcard)
		return strcasecmp(e->host, host) == 0;
	hl = strlen(host);
	el = strlen(e->host);
	return hl > el && strcasecmp(host + hl - el, e->host) == 0;
}

int policy_check_addr(const struct policy *p, const struct sockaddr *addr, const char *host)
{
	bool refused_range;
	struct net a;
	int port;

	if (addr_of(addr, &a, &port) < 0)
		return -EPERM;
	refused_range = is_refused_range(&a);
	if (p->n_entries == 0)
		return refused_range ? -EPERM : 0;
	for (size_t i = 0; i < p->n_entries; i++) {
		const struct entry *e = &p->entries[i];

		if (port < e->port_lo || port > e->port_hi)
			continue;
		if (e->is_net ? net_contains(&e->net, &a) : !refused_range && host_matches(e, host))
			return 0;
	}
	return -EPERM;
}

int policy_url_host_port(const char *url, char *host, size_t hostlen, int *ret_port)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *h = NULL, *port = NULL;
	int64_t pn = 0;
	int r = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		r = -EPROTO;
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || strlen(h) >= hostlen ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    rd_parse_int64(port, 1, 65535, &pn) < 0)
		goto out;
	snprintf(host, hostlen, "%s", h);
	*ret_port = (int)pn;
	r = 0;
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

/* ---- checking a spec's URLs ---- */

struct target {
	char path[80];
	const char *url; /* or a local file's path (files[]) */
};

struct policy_check {
	uv_loop_t *loop;
	struct policy *p;
	policy_check_cb cb;
	void *userdata;
	struct target *targets;
	size_t n_targets, next;
	struct target *files;
	size_t n_files, next_file;
	uv_getaddrinfo_t gai;
	uv_work_t work;
	int file_err;
	char file_why[160];
	bool resolving, working, cancelled;
	char host[HOST_MAX + 3];
	int port;
};

/* A top-level field (i == SIZE_MAX) or probe i's. */
static void add(struct target *list, size_t *n, const char *value, size_t i, const char *field)
{
	struct target *t;

	if (!value)
		return;
	t = &list[(*n)++];
	if (i == SIZE_MAX)
		snprintf(t->path, sizeof(t->path), "%s", field);
	else
		snprintf(t->path, sizeof(t->path), "probes[%zu].%s", i, field);
	t->url = value;
}

/* The probe's fields its type marks as URLs or files (spec_schema.h):
 * counted first (list NULL), then collected. */
struct collect {
	struct target *list;
	size_t n, probe;
};

static int collect_one(void *userdata, const char *path, const char *value)
{
	struct collect *cl = userdata;

	if (cl->list)
		add(cl->list, &cl->n, value, cl->probe, path);
	else
		cl->n++;
	return 0;
}

static int collect(const struct spec *spec, unsigned flags, size_t extra, struct target **ret,
                   size_t *ret_n)
{
	struct collect cl = {0};

	for (size_t i = 0; i < spec->n_probes; i++)
		spec_probe_walk(&spec->probes[i], flags, collect_one, &cl);
	cl.list = calloc(cl.n + extra + 1, sizeof(*cl.list));
	if (!cl.list)
		return -ENOMEM;
	*ret = cl.list;
	cl.n = 0;
	if (extra && spec->has_target)
		add(cl.list, &cl.n, spec->target.url, SIZE_MAX, "target.url");
	for (size_t i = 0; i < spec->n_probes; i++) {
		cl.probe = i;
		spec_probe_walk(&spec->probes[i], flags, collect_one, &cl);
	}
	*ret_n = cl.n;
	return 0;
}

static int collect_targets(struct policy_check *c, const struct spec *spec)
{
	if (collect(spec, SPEC_FIELD_FILE, 0, &c->files, &c->n_files) < 0)
		return -ENOMEM;
	return collect(spec, SPEC_FIELD_URL, 1, &c->targets, &c->n_targets);
}

static void check_free(struct policy_check *c)
{
	policy_unref(c->p);
	free(c->files);
	free(c->targets);
	free(c);
}

static void finish(struct policy_check *c, int err, const char *path, const char *message)
{
	/* path may point into c: free after the callback. */
	c->cb(c->userdata, err, path, message);
	check_free(c);
}

/* An address literal as a sockaddr with port; false for a name. */
static bool literal_addr(const char *host, int port, struct sockaddr_storage *ret)
{
	char buf[HOST_MAX + 3];
	size_t n = strlen(host);
	struct sockaddr_in *in = (struct sockaddr_in *)ret;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ret;

	memset(ret, 0, sizeof(*ret));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return true;
	}
	if (n >= 2 && n < sizeof(buf) && host[0] == '[' && host[n - 1] == ']') {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			return true;
		}
	}
	return false;
}

static void refuse(struct policy_check *c, const struct target *t, const char *why)
{
	char msg[512], url[RD_URL_TEXT_MAX];

	snprintf(msg, sizeof(msg), "%s: %s", rd_url_redact(t->url, url, sizeof(url)), why);
	finish(c, -EPERM, t->path, msg);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);
static void files_step(struct policy_check *c);

/* Checks targets in order until one needs a resolution (then returns and
 * continues from on_resolved) or all are done. */
static void step(struct policy_check *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct sockaddr_storage ss;
	int r;

	while (c->next < c->n_targets) {
		const struct target *t = &c->targets[c->next];

		r = policy_url_host_port(t->url, c->host, sizeof(c->host), &c->port);
		if (r == -EPROTO)
			return refuse(c, t, "only http:// and https:// URLs are allowed");
		if (r < 0)
			return refuse(c, t, "the URL does not parse");
		if (!literal_addr(c->host, c->port, &ss)) {
			r = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, NULL, &hints);
			if (r < 0)
				return finish(c, r, t->path, "cannot start name resolution");
			c->resolving = true;
			return;
		}
		if (policy_check_addr(c->p, (struct sockaddr *)&ss, c->host) < 0)
			return refuse(c, t, "the address is not in allowed_targets");
		c->next++;
	}
	files_step(c);
}

static void set_port(struct sockaddr *sa, int port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

/* A name passes when at least one of its addresses is allowed: the run
 * time hook still refuses every connection to the others. */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct policy_check *c = rd_container_of(req, struct policy_check, gai);
	const struct target *t = &c->targets[c->next];
	bool ok = false;

	c->resolving = false;
	for (struct addrinfo *ai = res; ai && !ok && !c->cancelled; ai = ai->ai_next) {
		set_port(ai->ai_addr, c->port);
		ok = policy_check_addr(c->p, ai->ai_addr, c->host) == 0;
	}
	uv_freeaddrinfo(res);
	if (c->cancelled) {
		check_free(c);
		return;
	}
	if (status < 0)
		return refuse(c, t, "the host name does not resolve");
	if (!ok)
		return refuse(c, t, "no address of the host is in allowed_targets");
	c->next++;
	step(c);
}

/* ---- checking a spec's local files ---- */

static int open_confined(const struct policy *p, const char *path, size_t max, int *ret_fd,
                         char *why, size_t whylen);

static void file_work(uv_work_t *w)
{
	struct policy_check *c = rd_container_of(w, struct policy_check, work);
	const struct target *t = &c->files[c->next_file];
	int fd = -1;

	c->file_err = open_confined(c->p, t->url, POLICY_MAX_FILE_SIZE, &fd, c->file_why,
	                            sizeof(c->file_why));
	if (c->file_err == 0)
		close(fd);
	/* A file that does not exist yet where files are allowed (a pid file
	 * the service writes when it starts) is for the run to find. */
	if (c->file_err == -ENOENT)
		c->file_err = 0;
}

static void on_file_checked(uv_work_t *w, int status)
{
	struct policy_check *c = rd_container_of(w, struct policy_check, work);
	const struct target *t = &c->files[c->next_file];
	char msg[512];

	c->working = false;
	if (c->cancelled) {
		check_free(c);
		return;
	}
	if (status < 0)
		return finish(c, status, t->path, "cannot check the file");
	if (c->file_err < 0) {
		snprintf(msg, sizeof(msg), "%.300s %s", t->url, c->file_why);
		return finish(c, -EPERM, t->path, msg);
	}
	c->next_file++;
	files_step(c);
}

/* One file at a time on the threadpool: realpath and open may block on
 * a slow file system, never the loop. */
static void files_step(struct policy_check *c)
{
	int r;

	if (c->next_file == c->n_files)
		return finish(c, 0, "", "");
	if (c->p->n_paths == 0)
		return finish(c, -EPERM, c->files[c->next_file].path,
		              "local files are not allowed: this server's readyd.yaml lists no "
		              "allowed_paths");
	r = uv_queue_work(c->loop, &c->work, file_work, on_file_checked);
	if (r < 0)
		return finish(c, r, c->files[c->next_file].path, "cannot check the file");
	c->working = true;
}

int policy_check_spec(uv_loop_t *loop, struct policy *p, const struct spec *spec,
                      policy_check_cb cb, void *userdata, struct policy_check **ret_check)
{
	struct policy_check *c = calloc(1, sizeof(*c));

	if (!c || collect_targets(c, spec) < 0) {
		if (c) {
			free(c->files);
			free(c->targets);
		}
		free(c);
		return -ENOMEM;
	}
	c->loop = loop;
	c->p = policy_ref(p);
	c->cb = cb;
	c->userdata = userdata;
	if (ret_check)
		*ret_check = c;
	step(c);
	return 0;
}

void policy_check_cancel(struct policy_check *c)
{
	if (c->resolving || c->working)
		c->cancelled = true; /* freed by on_resolved or on_file_checked */
	else
		check_free(c);
}

/* ---- local files ---- */

int policy_set_paths(struct policy *p, json_t *dirs, char *err, size_t errlen)
{
	size_t n = json_array_size(dirs), i;
	json_t *v;

	if (dirs && (!json_is_array(dirs) || n > POLICY_MAX_PATHS)) {
		snprintf(err, errlen, "allowed_paths: must be a list of at most %d directories",
		         POLICY_MAX_PATHS);
		return -EINVAL;
	}
	json_array_foreach (dirs, i, v) {
		const char *d = json_string_value(v);

		if (!d || d[0] != '/' || strlen(d) >= PATH_MAX || strpbrk(d, "\n\r\t")) {
			snprintf(err, errlen,
			         "allowed_paths[%zu]: must be an absolute directory path", i);
			return -EINVAL;
		}
	}
	p->paths = calloc(n + 1, sizeof(*p->paths));
	if (!p->paths)
		return -ENOMEM;
	json_array_foreach (dirs, i, v) {
		p->paths[i] = strdup(json_string_value(v));
		if (!p->paths[i])
			return -ENOMEM; /* policy_free releases what was copied */
		p->n_paths = i + 1;
	}
	return 0;
}

/* path lies in dir (both absolute, resolved): dir itself or below it. */
static bool path_under(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1)
		return true; /* "/" */
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Is the resolved path in one of the allowed directories (resolved now:
 * they may be symlinks, or appear after readyd started)? */
static bool allowed_real(const struct policy *p, const char *real)
{
	for (size_t i = 0; i < p->n_paths; i++) {
		char *dir = realpath(p->paths[i], NULL);
		bool in = dir && path_under(dir, real);

		free(dir);
		if (in)
			return true;
	}
	return false;
}

/* The path as written names an allowed directory (for what to say when
 * it does not resolve: "does not exist" only where reading is allowed). */
static bool allowed_lexically(const struct policy *p, const char *path)
{
	size_t n = strlen(path);

	if (strstr(path, "/../") || strstr(path, "/./") || strstr(path, "//") ||
	    (n >= 3 && strcmp(path + n - 3, "/..") == 0))
		return false;
	for (size_t i = 0; i < p->n_paths; i++)
		if (path_under(p->paths[i], path))
			return true;
	return false;
}

static int deny(char *why, size_t len, int err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int deny(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

/* What the descriptor really is, against a rename or symlink swap
 * between realpath() and open(). Without /proc it relies on O_NOFOLLOW. */
static bool fd_still_allowed(const struct policy *p, int fd)
{
	char link[64], target[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT || errno == ENOTDIR;
	target[n] = '\0';
	return allowed_real(p, target);
}

static int check_opened(const struct policy *p, int fd, size_t max, char *why, size_t len)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return deny(why, len, -errno, "cannot be examined: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return deny(why, len, -EINVAL, "is not a regular file");
	if ((uint64_t)st.st_size > (uint64_t)max)
		return deny(why, len, -EFBIG, "is larger than %zu bytes", max);
	if (!fd_still_allowed(p, fd))
		return deny(why, len, -EACCES, "is not under allowed_paths");
	return 0;
}

static int open_confined(const struct policy *p, const char *path, size_t max, int *ret_fd,
                         char *why, size_t whylen)
{
	char *real;
	int fd, r;

	if (!p || p->n_paths == 0)
		return deny(why, whylen, -EACCES,
		            "cannot be read: this server's readyd.yaml lists no allowed_paths");
	if (!path || path[0] != '/')
		return deny(why, whylen, -EACCES, "is not an absolute path");
	real = realpath(path, NULL);
	if (!real && allowed_lexically(p, path))
		return deny(why, whylen, -errno, "cannot be resolved: %s", strerror(errno));
	if (!real || !allowed_real(p, real)) {
		free(real);
		return deny(why, whylen, -EACCES,
		            "is not under allowed_paths (after resolving symlinks and '..')");
	}
	/* O_NONBLOCK: a FIFO or a device must not block the open; it is then
	 * refused as not a regular file. */
	fd = open(real, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	free(real);
	if (fd < 0)
		return deny(why, whylen, -errno, "cannot be opened: %s", strerror(errno));
	r = check_opened(p, fd, max, why, whylen);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int read_all(int fd, size_t max, char *buf, size_t *ret_len)
{
	size_t len = 0;
	ssize_t n;

	while (len <= max) {
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max)
		return -EFBIG;
	*ret_len = len;
	return 0;
}

int policy_read_file(const struct policy *p, const char *path, size_t max, char **ret_buf,
                     size_t *ret_len, char *why, size_t whylen)
{
	size_t len = 0;
	char *buf;
	int fd = -1, r;

	if (max > POLICY_MAX_FILE_SIZE)
		max = POLICY_MAX_FILE_SIZE;
	r = open_confined(p, path, max, &fd, why, whylen);
	if (r < 0)
		return r;
	buf = malloc(max + 2);
	if (!buf) {
		close(fd);
		return deny(why, whylen, -ENOMEM, "cannot be read: out of memory");
	}
	r = read_all(fd, max, buf, &len);
	close(fd);
	if (r < 0) {
		free(buf);
		return r == -EFBIG ? deny(why, whylen, r, "grew past the size cap while read")
		                   : deny(why, whylen, r, "cannot be read: %s", strerror(-r));
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

struct policy_file {
	uv_work_t work;
	struct policy *p;
	char *path;
	size_t max;
	policy_file_cb cb;
	void *userdata;
	char *buf;
	size_t len;
	int err;
	char why[256];
	bool cancelled;
};

static void read_work(uv_work_t *w)
{
	struct policy_file *f = w->data;

	f->err = policy_read_file(f->p, f->path, f->max, &f->buf, &f->len, f->why, sizeof(f->why));
}

static void read_done(uv_work_t *w, int status)
{
	struct policy_file *f = w->data;

	if (status < 0 && f->err == 0) {
		f->err = status;
		snprintf(f->why, sizeof(f->why), "cannot be read: %s", strerror(-status));
	}
	if (!f->cancelled) {
		f->cb(f->userdata, f->err, f->err == 0 ? f->buf : NULL, f->len, f->why);
		if (f->err == 0)
			f->buf = NULL; /* stolen */
	}
	free(f->buf);
	free(f->path);
	policy_unref(f->p);
	free(f);
}

int policy_read_file_async(uv_loop_t *loop, struct policy *p, const char *path, size_t max,
                           policy_file_cb cb, void *userdata, struct policy_file **ret_file)
{
	struct policy_file *f = calloc(1, sizeof(*f));
	int r;

	if (!f || !(f->path = strdup(path ? path : ""))) {
		free(f);
		return -ENOMEM;
	}
	f->p = policy_ref(p);
	f->max = max;
	f->cb = cb;
	f->userdata = userdata;
	f->work.data = f;
	r = uv_queue_work(loop, &f->work, read_work, read_done);
	if (r < 0) {
		policy_unref(f->p);
		free(f->path);
		free(f);
		return r;
	}
	if (ret_file)
		*ret_file = f;
	return 0;
}

void policy_file_cancel(struct policy_file *f)
{
	if (f)
		f->cancelled = true;
}

/* ---- limits ---- */

/* Field path of probe i (or top level with i == SIZE_MAX) and why. */
static int over(struct spec_error *err, size_t i, const char *field, const char *what, double cap,
                const char *unit)
{
	if (i == SIZE_MAX)
		snprintf(err->path, sizeof(err->path), "%s", field);
	else
		snprintf(err->path, sizeof(err->path), "probes[%zu].%s", i, field);
	snprintf(err->message, sizeof(err->message), "more than this server's limit of %g %s%s",
	         cap, unit, what);
	return -EPERM;
}

/* An alert drill's `traffic` is load too, with its own fields. */
static int check_traffic(const struct policy_limits *l, const struct spec_probe *sp, size_t i,
                         struct spec_error *err)
{
	if (l->max_load_connections && sp->traffic.connections > l->max_load_connections)
		return over(err, i, "traffic.connections", " per probe",
		            (double)l->max_load_connections, "connections");
	if (l->max_load_rate > 0 && sp->traffic.rate > l->max_load_rate)
		return over(err, i, "traffic.rate", " per probe", l->max_load_rate, "requests/s");
	return 0;
}

static int check_load_probe(const struct policy_limits *l, const struct spec_probe *sp, size_t i,
                            struct spec_error *err)
{
	if (sp->traffic.rate > 0)
		return check_traffic(l, sp, i, err);
	if (!probe_type_get(sp->type)->load)
		return 0;
	if (l->max_load_connections && sp->connections > l->max_load_connections)
		return over(err, i, "connections", " per probe", (double)l->max_load_connections,
		            "connections");
	if (l->max_load_rate > 0 && sp->rate > l->max_load_rate)
		return over(err, i, "rate", " per probe", l->max_load_rate, "requests/s");
	if (l->max_load_rate > 0 && sp->max_rate > l->max_load_rate)
		return over(err, i, "max_rate", " per probe", l->max_load_rate, "requests/s");
	if (l->max_probe_duration_ms && sp->duration_ms > l->max_probe_duration_ms)
		return over(err, i, "duration", " per load probe",
		            (double)l->max_probe_duration_ms / 1000.0, "s");
	/* compare: all its segments, both endpoints' */
	if (l->max_probe_duration_ms &&
	    2 * sp->segments * (sp->segment_ms + sp->warmup_ms) > l->max_probe_duration_ms)
		return over(err, i, "segments", " per load probe (2 x segments x segment_duration)",
		            (double)l->max_probe_duration_ms / 1000.0, "s");
	return 0;
}

int policy_check_limits(const struct policy_limits *l, const struct spec *spec,
                        struct spec_error *err)
{
	err->line = 0;
	if (l->max_probes && (int64_t)spec->n_probes > l->max_probes)
		return over(err, SIZE_MAX, "probes", "", (double)l->max_probes, "probes");
	if (l->max_run_duration_ms && spec->timeout_ms > l->max_run_duration_ms)
		return over(err, SIZE_MAX, "timeout", " per run",
		            (double)l->max_run_duration_ms / 1000.0, "s");
	for (size_t i = 0; i < spec->n_probes; i++)
		if (check_load_probe(l, &spec->probes[i], i, err) < 0)
			return -EPERM;
	return 0;
}
