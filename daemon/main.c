/* readyd: main(). Reads flags and the config, opens the store (marking
 * runs a previous process left running as interrupted), wires the store,
 * the scheduler, the outgoing HTTP client and the API server onto one
 * libuv loop, and owns the process's life: signals, readiness, shutdown
 * and the exit code. Nothing else in readyd exits or reads signals.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "lib/loadgen/loadgen.h"
#include "lib/net/http.h"
#include "lib/util/assert.h"
#include "lib/util/log.h"
#include "notify.h"
#include "lib/policy/policy.h"
#include "lib/prom/aminbox.h"
#include "lib/sched/sched.h"
#include "lib/store/store.h"
#include "lib/util/util.h"

struct daemon {
	uv_loop_t loop;
	struct rd_config cfg;
	struct store *store;
	struct http_client *http;
	struct sched *sched;
	struct api_server *api;
	struct api_app app;
	uv_signal_t sigint, sigterm, sighup;
	uv_timer_t shutdown_timer, drain_timer, watchdog_timer, retention_timer, db_check_timer;
	char db_problem[512]; /* app.db_problem points here while set */
	const char *port_file;
	const char *config_path; /* for SIGHUP */
	bool log_level_flag;     /* --log-level wins over the config, also on reload */
	char *tls_cert_pem, *tls_key_pem;
	bool stopping;
	bool check_config;      /* --check-config: load the config, say so, exit */
	bool partition_metrics; /* --partition-metrics: convert, say so, exit */
	int exit_code;
};

#define TLS_FILE_MAX (1024 * 1024)

#define SWAP_CFG(a, b)                                                                             \
	do {                                                                                       \
		struct rd_config tmp_ = (a);                                                       \
		(a) = (b);                                                                         \
		(b) = tmp_;                                                                        \
	} while (0)

/* Retention: a small batch per tick keeps every DELETE short; a full
 * batch means more is due, so the next comes soon. */
#define RETENTION_BATCH     500
#define RETENTION_FIRST_MS  1000
#define RETENTION_PERIOD_MS (60 * 1000)
#define RETENTION_AGAIN_MS  50

/* How often the database path is compared with the open file (SQLite),
 * or the database server pinged and, when lost, reconnected to
 * (PostgreSQL). A stat() or a ping is cheap; the interval bounds how long
 * a deleted database or a stopped server goes unnoticed by an idle readyd,
 * and how soon one that is back is used again. */
#define DB_CHECK_MS 2000

#define SWAP_STR(a, b)                                                                             \
	do {                                                                                       \
		char *tmp_ = (a);                                                                  \
		(a) = (b);                                                                         \
		(b) = tmp_;                                                                        \
	} while (0)

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: readyd [OPTIONS]\n"
	        "\n"
	        "The deployment-readiness daemon: runs readiness specs, stores verdicts,\n"
	        "serves them over a JSON API.\n"
	        "\n"
	        "  -c, --config FILE      readyd.yaml (flags below override it)\n"
	        "  -l, --listen HOST:PORT listen address (default " RD_DEFAULT_LISTEN
	        "; port 0 = any)\n"
	        "  -d, --db PATH|URL      SQLite database file (default " RD_DEFAULT_DB "),\n"
	        "                         or a postgresql:// URL or libpq key=value string\n"
	        "      --log-level LEVEL  error, warn, info or debug\n"
	        "      --port-file FILE   write the bound port there once listening\n"
	        "      --list-routes      print the API's routes and roles as JSON and exit\n"
	        "      --check-config     load the config (and flags), report, exit 0 or 2\n"
	        "      --partition-metrics\n"
	        "                         PostgreSQL: partition the metrics table by run id\n"
	        "                         (once, with every node stopped) and exit\n"
	        "  -V, --version          print the version and exit\n"
	        "  -h, --help             this text\n"
	        "\n"
	        "  readyd hash-token      read a token on stdin, print its SHA-256 for tokens:\n");
}

static void add_route(const struct api_route *route, void *userdata)
{
	json_array_append_new(userdata,
	                      json_pack("{s:s, s:s, s:s}", "method", route->method, "path",
	                                route->pattern, "role", auth_role_to_string(route->role)));
}

/* The compiled route tables: the auth matrix test iterates these, so a
 * route someone adds is covered without editing the test. */
static int list_routes(void)
{
	json_t *list = json_array();

	if (!list)
		return 1;
	api_routes_foreach(add_route, list);
	if (json_dumpf(list, stdout, JSON_INDENT(1)) < 0)
		return 1;
	putchar('\n');
	json_decref(list);
	return 0;
}

/* `readyd hash-token`: the token on stdin (one line; a trailing newline
 * is not part of it), its hash on stdout. The token never is an argument,
 * so it stays out of shell history and ps. */
static int hash_token(void)
{
	char buf[AUTH_TOKEN_MAX + 2], hex[2 * AUTH_HASH_LEN + 1];
	size_t n = fread(buf, 1, sizeof(buf) - 1, stdin);

	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0 || n > AUTH_TOKEN_MAX || memchr(buf, '\n', n) || memchr(buf, ' ', n)) {
		fprintf(stderr,
		        "readyd hash-token: give one token (1-%d bytes, no spaces) on "
		        "stdin, e.g.\n  head -c 32 /dev/urandom | base64 | tr -d '=+/' | tee "
		        "token | readyd hash-token\n",
		        AUTH_TOKEN_MAX);
		return 2;
	}
	if (auth_hash_hex(buf, n, hex) < 0)
		return 1;
	memset(buf, 0, sizeof(buf));
	printf("%s\n", hex);
	return 0;
}

/* Flags are applied after the config file, so they win. */
struct flags {
	const char *config, *listen, *db, *log_level, *port_file;
	bool check_config, partition_metrics;
};

static int parse_flags(int argc, char **argv, struct flags *f)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"listen", required_argument, NULL, 'l'},
	        {"db", required_argument, NULL, 'd'},
	        {"log-level", required_argument, NULL, 'L'},
	        {"port-file", required_argument, NULL, 'p'},
	        {"list-routes", no_argument, NULL, 'R'},
	        {"check-config", no_argument, NULL, 'C'},
	        {"partition-metrics", no_argument, NULL, 'P'},
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:l:d:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			f->config = optarg;
			break;
		case 'l':
			f->listen = optarg;
			break;
		case 'd':
			f->db = optarg;
			break;
		case 'L':
			f->log_level = optarg;
			break;
		case 'p':
			f->port_file = optarg;
			break;
		case 'C':
			f->check_config = true;
			break;
		case 'P':
			f->partition_metrics = true;
			break;
		case 'V':
			printf("readyd %s\n", READYD_VERSION);
			exit(0);
		case 'R':
			exit(list_routes());
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "readyd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* A broken invariant in a release build: lib/ fails the affected run and
 * calls here, since only daemon/ and api/ log above debug. */
static void on_assert(const char *expr, const char *file, int line, const char *func)
{
	log_error("Invariant '%s' broken at %s:%d (%s); the affected run fails", expr, file, line,
	          func);
}

static int configure(struct daemon *d, int argc, char **argv)
{
	struct flags f = {0};
	char err[512], shown[1024];

	config_init(&d->cfg);
	if (!d->cfg.listen || !d->cfg.database || parse_flags(argc, argv, &f) < 0)
		return -EINVAL;
	if (f.config && config_load(&d->cfg, f.config, err, sizeof(err)) < 0) {
		log_error("Failed to load config: %s", err);
		return -EINVAL;
	}
	if ((f.listen && config_set_string(&d->cfg.listen, f.listen) < 0) ||
	    (f.db && config_set_string(&d->cfg.database, f.db) < 0))
		return -ENOMEM;
	/* From the file or --db: a malformed URL fails --check-config too. */
	if (store_where_check(d->cfg.database, err, sizeof(err)) < 0) {
		log_error("Failed to use database '%s': %s",
		          rd_url_redact(d->cfg.database, shown, sizeof(shown)), err);
		return -EINVAL;
	}
	d->config_path = f.config;
	d->log_level_flag = f.log_level != NULL;
	if (f.log_level && rd_log_level_parse(f.log_level, &d->cfg.log_level) < 0) {
		log_error("Failed to parse '--log-level %s': use error, warn, info or debug",
		          f.log_level);
		return -EINVAL;
	}
	d->port_file = f.port_file;
	d->check_config = f.check_config;
	d->partition_metrics = f.partition_metrics;
	rd_log_set_level(d->cfg.log_level);
	rd_assert_set_hook(on_assert);
	return 0;
}

/* The default database lives under ./var: create that one directory level
 * so the quick start works on a fresh clone. */
static void ensure_db_dir(const char *db)
{
	char *copy = strdup(db), *dir;

	if (!copy)
		return;
	dir = dirname(copy);
	if (strcmp(dir, ".") != 0 && mkdir(dir, 0750) < 0 && errno != EEXIST)
		log_warn("Failed to create '%s': %s, ignoring", dir, strerror(errno));
	free(copy);
}

static int open_store(struct daemon *d)
{
	char err[512], shown[1024];
	int r;

	if (store_is_local_file(d->cfg.database))
		ensure_db_dir(d->cfg.database);
	r = store_open(d->cfg.database, &d->store, err, sizeof(err));
	if (r < 0) {
		/* A database URL may carry a password. */
		log_error("Failed to open database '%s': %s",
		          rd_url_redact(d->cfg.database, shown, sizeof(shown)), err);
		return r;
	}
	/* Several nodes share a database: runs left running elsewhere are
	 * another node's, ended by the lease expiry when that node is gone. */
	if (store_shared(d->store))
		return 0;
	r = store_runs_interrupt_stale(d->store, rd_now_ms());
	if (r > 0)
		log_warn("Marked %d run(s) left by a previous readyd as interrupted", r);
	else if (r < 0)
		log_warn("Failed to mark stale runs as interrupted: %s, ignoring", strerror(-r));
	return 0;
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static void write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) < 0)
		log_warn("Failed to write port file '%s': %s, ignoring", path, strerror(errno));
}

static void on_closed_free_nothing(uv_handle_t *h)
{
	(void)h;
}

static void finish_shutdown(void *userdata)
{
	struct daemon *d = userdata;
	uv_handle_t *handles[] = {
	        (uv_handle_t *)&d->sigint,          (uv_handle_t *)&d->sigterm,
	        (uv_handle_t *)&d->sighup,          (uv_handle_t *)&d->shutdown_timer,
	        (uv_handle_t *)&d->drain_timer,     (uv_handle_t *)&d->watchdog_timer,
	        (uv_handle_t *)&d->retention_timer, (uv_handle_t *)&d->db_check_timer,
	};

	api_server_free(d->api);
	d->api = NULL;
	http_client_free(d->http);
	d->http = NULL;
	for (size_t i = 0; i < RD_ARRAY_SIZE(handles); i++)
		if (!uv_is_closing(handles[i]))
			uv_close(handles[i], on_closed_free_nothing);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
	log_error("Failed to stop within the shutdown timeout: exiting anyway");
	exit(1);
}

/* shutdown.runs: finish ran out of time: what still runs is interrupted. */
static void on_drain_timeout(uv_timer_t *t)
{
	struct daemon *d = t->data;

	log_warn("runs still active after the drain timeout: interrupting them");
	sched_shutdown(d->sched, true, finish_shutdown, d);
}

static void begin_shutdown(struct daemon *d, int signum)
{
	d->stopping = true;
	d->app.draining = true;
	notify_stopping();
	/* The last chance to say it: past this exit, the open file is gone. */
	if (d->app.db_problem && store_is_local_file(d->cfg.database))
		log_error("received %s while %s: what readyd stored since then is lost unless "
		          "the open file was copied out (docs/operations.md)",
		          strsignal(signum), d->app.db_problem);
	/* The hard stop leaves the drain its whole timeout plus time to
	 * record the interrupted runs and close. */
	uv_timer_start(&d->shutdown_timer, on_shutdown_timeout,
	               (uint64_t)d->cfg.shutdown_timeout_ms + 5000, 0);
	uv_unref((uv_handle_t *)&d->shutdown_timer);
	if (d->cfg.shutdown_finish) {
		log_info(
		        "received %s: draining (no new runs; active runs may finish within %lld ms)",
		        strsignal(signum), (long long)d->cfg.shutdown_timeout_ms);
		d->drain_timer.data = d;
		uv_timer_start(&d->drain_timer, on_drain_timeout,
		               (uint64_t)d->cfg.shutdown_timeout_ms, 0);
		sched_drain(d->sched, finish_shutdown, d);
		return;
	}
	log_info("received %s: stopping (active runs are recorded as interrupted)",
	         strsignal(signum));
	sched_shutdown(d->sched, true, finish_shutdown, d);
}

/* Reads a PEM file whole (for MHD, which takes certificates in memory). */
static int read_pem(const char *path, char **ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	ssize_t n;
	size_t len = 0;

	if (fd < 0)
		return -errno;
	buf = malloc(TLS_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while ((n = read(fd, buf + len, TLS_FILE_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (n < 0 || len == 0 || len >= TLS_FILE_MAX) {
		free(buf);
		return n < 0 ? -EIO : -EINVAL;
	}
	buf[len] = '\0';
	*ret = buf;
	return 0;
}

/* Builds what a config means at run time; on success swaps it in and
 * releases the old (a reload), else leaves everything as it was. */
static int apply_security(struct daemon *d, const struct rd_config *cfg)
{
	struct auth_config ac = {
	        .tokens = cfg->tokens,
	        .n_tokens = cfg->n_tokens,
	        .public_metrics = cfg->public_metrics,
	        .rate = cfg->rate_limit,
	        .burst = cfg->rate_burst,
	};
	struct auth *auth;
	struct policy *policy;
	char err[512];
	int r = auth_new(&ac, &auth);

	if (r < 0)
		return r;
	r = policy_new(cfg->allowed_targets, &policy, err, sizeof(err));
	if (r == 0 && (r = policy_set_paths(policy, cfg->allowed_paths, err, sizeof(err))) < 0)
		policy_unref(policy);
	if (r < 0) {
		log_error("Failed to apply allowed_targets or allowed_paths: %s", err);
		auth_free(auth);
		return r;
	}
	auth_free(d->app.auth);
	policy_unref(d->app.policy);
	d->app.auth = auth;
	d->app.policy = policy;
	d->app.limits = &d->cfg.limits;
	return 0;
}

/* SIGHUP: tokens, limits, allowed targets, scheduler caps and the log
 * level from the same file; a config that does not load changes nothing.
 * Connections and runs are untouched. */
static void reload(struct daemon *d)
{
	struct rd_config cfg;
	char err[512];

	notify_reloading();
	config_init(&cfg);
	if (!d->config_path) {
		log_info("SIGHUP: no --config file to reload, ignoring");
		goto out;
	}
	if (config_load(&cfg, d->config_path, err, sizeof(err)) < 0) {
		log_error("Failed to reload the config: %s; keeping the old one", err);
		goto out;
	}
	/* listen and database may come from flags; only tls is compared. */
	if (!!cfg.tls_cert != !!d->cfg.tls_cert ||
	    (cfg.tls_cert && (strcmp(cfg.tls_cert, d->cfg.tls_cert) != 0 ||
	                      strcmp(cfg.tls_key, d->cfg.tls_key) != 0)))
		log_warn("tls changes take effect at the next restart, ignoring");
	/* auth and policy copy what they keep, so they are built from cfg
	 * before it replaces the running config. */
	if (apply_security(d, &cfg) < 0) {
		log_error("Failed to reload the config: out of memory; keeping the old one");
		goto out;
	}
	/* Keep what only a restart changes; swap in the rest. */
	SWAP_STR(cfg.listen, d->cfg.listen);
	SWAP_STR(cfg.database, d->cfg.database);
	SWAP_STR(cfg.tls_cert, d->cfg.tls_cert);
	SWAP_STR(cfg.tls_key, d->cfg.tls_key);
	SWAP_STR(cfg.node_id, d->cfg.node_id);
	cfg.lease_ms = d->cfg.lease_ms;
	if (d->log_level_flag)
		cfg.log_level = d->cfg.log_level;
	SWAP_CFG(cfg, d->cfg); /* the old one is freed below */
	rd_log_set_level(d->cfg.log_level);
	sched_set_config(d->sched, &d->cfg.sched);
	loadgen_set_nice(d->cfg.load_nice);
	log_info("reloaded %s: %zu token(s), %zu allowed target(s), %zu allowed path(s)",
	         d->config_path, d->cfg.n_tokens, json_array_size(d->cfg.allowed_targets),
	         json_array_size(d->cfg.allowed_paths));
out:
	config_deinit(&cfg);
	notify_status("running");
	/* READY=1 ends RELOADING=1 for systemd. */
	notify_ready("running");
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		if (!d->stopping)
			reload(d);
		return;
	}
	if (d->stopping)
		return;
	begin_shutdown(d, signum);
}

static int start_signals(struct daemon *d)
{
	uv_signal_t *sigs[] = {&d->sigint, &d->sigterm, &d->sighup};
	int nums[] = {SIGINT, SIGTERM, SIGHUP};

	for (size_t i = 0; i < RD_ARRAY_SIZE(sigs); i++) {
		uv_signal_init(&d->loop, sigs[i]);
		sigs[i]->data = d;
		uv_signal_start(sigs[i], on_signal, nums[i]);
	}
	uv_timer_init(&d->loop, &d->shutdown_timer);
	uv_timer_init(&d->loop, &d->drain_timer);
	uv_timer_init(&d->loop, &d->watchdog_timer);
	uv_timer_init(&d->loop, &d->retention_timer);
	uv_timer_init(&d->loop, &d->db_check_timer);
	return 0;
}

static void on_retention(uv_timer_t *t)
{
	struct daemon *d = t->data;
	int64_t days = d->cfg.retention_raw_days;
	int n;

	if (d->stopping)
		return;
	if (days <= 0) {
		uv_timer_start(t, on_retention, RETENTION_PERIOD_MS, 0);
		return;
	}
	n = store_prune_raw(d->store, rd_now_ms() - days * 24 * 3600 * 1000, RETENTION_BATCH);
	if (n < 0)
		log_warn("Failed to prune raw data: %s, ignoring", store_errmsg(d->store));
	else if (n > 0)
		log_info("retention: pruned %d raw row(s) older than %lld day(s)", n,
		         (long long)days);
	uv_timer_start(t, on_retention,
	               n == RETENTION_BATCH ? RETENTION_AGAIN_MS : RETENTION_PERIOD_MS, 0);
}

/* Always armed (raw_days may come with a reload); idle without it. */
static void start_retention(struct daemon *d)
{
	d->retention_timer.data = d;
	uv_timer_start(&d->retention_timer, on_retention, RETENTION_FIRST_MS, 0);
	uv_unref((uv_handle_t *)&d->retention_timer);
}

/* The scheduler's word on refused writes (a full disk): the first of a
 * spell and the recovery; the retries in between stay at debug. */
static void on_store_event(void *userdata, int err, const char *sentence)
{
	(void)userdata;
	if (err < 0)
		log_error("%s", sentence);
	else
		log_info("%s", sentence);
}

/* The database stopped being one readyd can keep runs in; new runs are
 * refused meanwhile (api_store_problem). A SQLite file deleted or renamed
 * away under readyd keeps taking writes through the open handle, and all
 * of them are gone at the next start: reads go on from the open file, and
 * the write-ahead log is checkpointed into it so that the open file alone
 * holds everything (docs/operations.md, "The database file was deleted").
 * A database server (PostgreSQL) that stopped answering is reconnected by
 * these checks, a slice at a time; what runs measured meanwhile is kept
 * in memory by the scheduler and written once it answers again
 * (docs/operations.md, "PostgreSQL"). */
static void db_problem_begin(struct daemon *d, bool file, const char *shown)
{
	snprintf(d->db_problem, sizeof(d->db_problem),
	         file ? "%s; new runs are refused until it is back in place or readyd restarts"
	              : "%s; new runs are refused until it answers again",
	         store_errmsg(d->store));
	d->app.db_problem = d->db_problem;
	if (file)
		log_error("Failed to keep database '%s': %s; refusing new runs, serving reads "
		          "from the open file",
		          shown, store_errmsg(d->store));
	else
		log_error("Failed to reach database '%s': %s; refusing new runs and retrying "
		          "every %d s",
		          shown, store_errmsg(d->store), DB_CHECK_MS / 1000);
}

static void db_problem_end(struct daemon *d, bool file, const char *shown)
{
	d->app.db_problem = NULL;
	if (file) {
		log_info("database '%s' is back in place: taking new runs again", shown);
		return;
	}
	log_info("database '%s' answers again: taking new runs again", shown);
	sched_store_retry(d->sched);
}

static void on_db_check(uv_timer_t *t)
{
	struct daemon *d = t->data;
	bool file = store_is_local_file(d->cfg.database);
	char shown[1024];
	int r;

	if (d->stopping)
		return;
	r = store_check_file(d->store);
	/* A database URL may carry a password. */
	rd_url_redact(d->cfg.database, shown, sizeof(shown));
	if (r < 0 && !d->app.db_problem)
		db_problem_begin(d, file, shown);
	else if (r == 0 && d->app.db_problem)
		db_problem_end(d, file, shown);
	if (file && d->app.db_problem && store_checkpoint(d->store) < 0)
		log_debug("Failed to checkpoint '%s': %s", shown, store_errmsg(d->store));
}

static void start_db_check(struct daemon *d)
{
	d->db_check_timer.data = d;
	uv_timer_start(&d->db_check_timer, on_db_check, DB_CHECK_MS, DB_CHECK_MS);
	uv_unref((uv_handle_t *)&d->db_check_timer);
}

static void on_watchdog(uv_timer_t *t)
{
	notify_watchdog();
}

/* WATCHDOG=1 from the loop itself, so a stuck loop stops the pings and
 * systemd restarts readyd. */
static void start_watchdog(struct daemon *d)
{
	uint64_t ms = notify_watchdog_ms();

	if (ms == 0)
		return;
	uv_timer_start(&d->watchdog_timer, on_watchdog, ms / 2 ? ms / 2 : 1, ms / 2 ? ms / 2 : 1);
	uv_unref((uv_handle_t *)&d->watchdog_timer);
	log_info("watchdog: pinging every %llu ms", (unsigned long long)(ms / 2));
}

/* The http policy hook: every outgoing connection of every probe,
 * redirects included, against the current allowlist. */
static int on_http_policy(void *userdata, const struct sockaddr *addr, const char *host)
{
	struct daemon *d = userdata;
	int r = d->app.policy ? policy_check_addr(d->app.policy, addr, host) : 0;

	if (r < 0)
		log_warn("refused a probe connection to host '%s': not in allowed_targets", host);
	return r;
}

/* The policy probes read local files through (allowed_paths): the
 * current one, also after a reload. */
static struct policy *on_files_policy(void *userdata)
{
	struct daemon *d = userdata;

	return d->app.policy;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return ss->ss_family == AF_UNIX;
}

/* Tokenless is for the quick start on loopback only, unless the operator
 * says otherwise (allow_unauthenticated: true). */
static int check_exposure(struct daemon *d, int listen_fd)
{
	struct sockaddr_storage ss = {0};
	socklen_t len = sizeof(ss);
	const char *host = api_server_host(d->api);

	if (d->cfg.n_tokens > 0 || d->cfg.allow_unauthenticated)
		return 0;
	if (listen_fd >= 0) {
		if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) < 0)
			return -errno;
	} else if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
	}
	if (is_loopback(&ss))
		return 0;
	log_error("Failed to start: no tokens are configured and the API listens on a "
	          "non-loopback address; add tokens: (see readyd hash-token) or set "
	          "allow_unauthenticated: true");
	return -EACCES;
}

static int load_tls(struct daemon *d, struct api_config *ac)
{
	int r;

	if (!d->cfg.tls_cert)
		return 0;
	if ((r = read_pem(d->cfg.tls_cert, &d->tls_cert_pem)) < 0 ||
	    (r = read_pem(d->cfg.tls_key, &d->tls_key_pem)) < 0) {
		log_error("Failed to read the TLS certificate or key '%s': %s",
		          d->tls_cert_pem ? d->cfg.tls_key : d->cfg.tls_cert, strerror(-r));
		return r;
	}
	ac->tls_cert_pem = d->tls_cert_pem;
	ac->tls_key_pem = d->tls_key_pem;
	return 0;
}

static void announce(struct daemon *d)
{
	char status[128];
	const char *scheme = d->tls_cert_pem ? "https" : "http";

	if (strchr(api_server_host(d->api), ':'))
		snprintf(status, sizeof(status), "listening on %s://[%s]:%d", scheme,
		         api_server_host(d->api), api_server_port(d->api));
	else
		snprintf(status, sizeof(status), "listening on %s://%s:%d", scheme,
		         api_server_host(d->api), api_server_port(d->api));
	log_info("%s (%zu token(s)%s)", status, d->cfg.n_tokens,
	         d->cfg.n_tokens ? "" : ": every request is allowed");
	if (d->port_file)
		write_port_file(d->port_file, api_server_port(d->api));
	notify_ready(status);
}

/* Runs this node held in its previous life (the same node_id) end now
 * rather than when their lease passes: they are not running anywhere. */
static void recover_node(struct daemon *d, const char *id)
{
	json_t *runs = NULL;
	int r = store_leases_expire(d->store, rd_now_ms(), id, &runs);

	log_info("cluster mode: node '%s', lease %lld ms; runs are claimed from the shared queue",
	         id, (long long)d->cfg.lease_ms);
	if (r < 0)
		log_warn("Failed to end the runs node '%s' left: %s, ignoring (they end when "
		         "their lease passes)",
		         id, store_errmsg(d->store));
	else if (json_array_size(runs) > 0)
		log_warn("Marked %zu run(s) node '%s' left running as interrupted (or requeued)",
		         json_array_size(runs), id);
	json_decref(runs);
}

/* The node's name: node_id, or hostname:port (the port bound, so two
 * nodes on one host differ). */
static int set_node(struct daemon *d)
{
	char host[256] = "", id[320];
	int r;

	if (d->cfg.node_id) {
		snprintf(id, sizeof(id), "%s", d->cfg.node_id);
	} else {
		if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
			snprintf(host, sizeof(host), "localhost");
		snprintf(id, sizeof(id), "%s:%d", host, api_server_port(d->api));
	}
	r = sched_set_node(d->sched, id, d->cfg.lease_ms, READYD_VERSION);
	if (r < 0) {
		log_error("Failed to name this node '%s': %s", id, strerror(-r));
		return r;
	}
	if (store_shared(d->store))
		recover_node(d, id);
	return 0;
}

static int start(struct daemon *d)
{
	struct api_config ac = {
	        .listen = d->cfg.listen,
	        .listen_fd = notify_listen_fd(),
	        .max_body = d->cfg.max_body,
	        .max_connections = d->cfg.max_connections,
	        .connection_memory = d->cfg.connection_memory,
	        .cache_memory = d->cfg.cache_memory,
	        .per_ip_connections = d->cfg.per_ip_connections,
	        .idle_timeout_s = d->cfg.idle_timeout_s,
	};
	char err[512];
	int r;

	if ((r = apply_security(d, &d->cfg)) < 0 || (r = load_tls(d, &ac)) < 0)
		return r;
	r = http_client_new(&d->loop, &d->http);
	if (r < 0 || (r = sched_new(&d->loop, d->store, d->http, &d->cfg.sched, &d->sched)) < 0) {
		log_error("Failed to start the scheduler: %s", strerror(-r));
		return r;
	}
	http_client_set_policy(d->http, on_http_policy, d);
	loadgen_set_nice(d->cfg.load_nice);
	sched_set_store_cb(d->sched, on_store_event, d);
	http_client_set_files(d->http, on_files_policy, d);
	d->app.store = d->store;
	d->app.sched = d->sched;
	if ((r = aminbox_new(0, &d->app.inbox)) < 0) {
		log_error("Failed to start the Alertmanager receiver: %s", strerror(-r));
		return r;
	}
	sched_set_inbox(d->sched, d->app.inbox);
	r = api_server_new(&d->loop, &ac, &d->app, &d->api, err, sizeof(err));
	if (r < 0) {
		log_error("Failed to start the API server: %s", err);
		return r;
	}
	if ((r = check_exposure(d, ac.listen_fd)) < 0 || (r = set_node(d)) < 0)
		return r;
	announce(d);
	start_watchdog(d);
	start_retention(d);
	start_db_check(d);
	return 0;
}

static void cleanup(struct daemon *d)
{
	sched_free(d->sched);
	aminbox_free(d->app.inbox);
	store_free(d->store);
	auth_free(d->app.auth);
	policy_unref(d->app.policy);
	free(d->tls_cert_pem);
	free(d->tls_key_pem);
	config_deinit(&d->cfg);
}

/* `readyd --partition-metrics`: the operator's one-off conversion
 * (store_partition_metrics), outside the loop; migrates the database
 * first, as a start would. 0 converted or already partitioned, 1 failed,
 * 2 not a PostgreSQL database. */
static int partition_metrics(struct daemon *d)
{
	struct store *st = NULL;
	char err[512], shown[1024];
	int64_t upto = 0;
	int r;

	rd_url_redact(d->cfg.database, shown, sizeof(shown));
	r = store_open(d->cfg.database, &st, err, sizeof(err));
	if (r < 0) {
		log_error("Failed to open database '%s': %s", shown, err);
		return 1;
	}
	r = store_partition_metrics(st, &upto);
	if (r == -ENOTSUP)
		log_error("Failed to partition metrics in '%s': only a PostgreSQL database "
		          "partitions its metrics table",
		          shown);
	else if (r < 0)
		log_error("Failed to partition metrics in '%s': %s", shown, store_errmsg(st));
	else if (r == 1)
		printf("readyd: the metrics table of '%s' is already partitioned\n", shown);
	else
		printf("readyd: the metrics table of '%s' is partitioned: runs below %lld "
		       "in metrics_before_%lld, newer ones in ranges of %d run ids\n",
		       shown, (long long)upto, (long long)upto, STORE_PARTITION_RUNS);
	store_free(st);
	return r == -ENOTSUP ? 2 : r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct daemon d = {0};
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && strcmp(argv[1], "hash-token") == 0)
		return hash_token();
	if (configure(&d, argc, argv) < 0) {
		config_deinit(&d.cfg);
		return 2;
	}
	/* Package scripts and operators check an edited file before a
	 * reload or restart; a bad one already failed above with its path. */
	if (d.check_config) {
		printf("readyd: %s: configuration OK\n",
		       d.config_path ? d.config_path : "(built-in defaults)");
		config_deinit(&d.cfg);
		return 0;
	}
	if (d.partition_metrics) {
		r = partition_metrics(&d);
		config_deinit(&d.cfg);
		return r;
	}
	uv_loop_init(&d.loop);
	start_signals(&d);
	if (open_store(&d) < 0 || start(&d) < 0) {
		d.exit_code = 1;
		d.stopping = true;
		if (d.sched)
			sched_shutdown(d.sched, true, finish_shutdown, &d);
		else
			finish_shutdown(&d);
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&d.loop);
	if (r < 0)
		log_error("Failed to close the event loop cleanly: %s", uv_strerror(r));
	cleanup(&d);
	if (d.exit_code == 0)
		log_info("stopped");
	return d.exit_code;
}
