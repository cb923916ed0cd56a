/* demo-target: a fake model server for readyd's tests and demo. main()
 * parses the command line, starts one plain and optionally one TLS
 * libmicrohttpd daemon (a thread per connection, so a delay is a precise
 * sleep that blocks nobody else), announces where it listens, and waits
 * for SIGINT/SIGTERM. It must stay standalone: no libreadyd, so what readyd
 * measures is checked against something it did not build.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo-target.h"

#define CONNECTION_LIMIT 4096
#define MAX_PEM_FILE     (1024 * 1024)

struct listener {
	struct MHD_Daemon *daemon;
	char where[300]; /* "127.0.0.1:8080" as bound */
	uint16_t port;
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	fputs("demo-target: mhd: ", stderr);
	vfprintf(stderr, fmt, ap);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Written to a temporary name and renamed, so a test polling the file
 * never reads half a number. */
static int write_file_atomic(const char *path, const char *text)
{
	char tmp[4096];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = write_all(fd, text, strlen(text));
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int read_pem(const char *path, char **ret_value)
{
	char *buf = NULL;
	size_t len;
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f)
		return -errno;
	buf = malloc(MAX_PEM_FILE + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	len = fread(buf, 1, MAX_PEM_FILE + 1, f);
	if (ferror(f))
		r = -EIO;
	else if (len > MAX_PEM_FILE)
		r = -EFBIG;
out:
	fclose(f);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[len] = '\0';
	*ret_value = buf;
	return 0;
}

static int resolve(const struct listen_spec *ls, struct sockaddr_storage *ret_value,
                   socklen_t *ret_len)
{
	struct addrinfo hints = {
	        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res;
	char port[8];

	snprintf(port, sizeof(port), "%u", (unsigned)ls->port);
	if (getaddrinfo(ls->host, port, &hints, &res) != 0)
		return -EADDRNOTAVAIL;
	memcpy(ret_value, res->ai_addr, res->ai_addrlen);
	*ret_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Reads back the bound address: with port 0 only the kernel knows it. */
static int describe_bound(struct listener *l)
{
	const union MHD_DaemonInfo *info =
	        MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_LISTEN_FD);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[256];

	if (!info || getsockname(info->listen_fd, (struct sockaddr *)&ss, &len) < 0)
		return -EIO;
	if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) !=
	    0)
		return -EIO;
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	snprintf(l->where, sizeof(l->where), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
	         (unsigned)l->port);
	return 0;
}

/* TLS options go through MHD_OPTION_ARRAY so the plain daemon passes an
 * empty array. "-VERS-TLS1.3" caps GnuTLS at 1.2 for --tls-max-version 1.2.
 * No MHD_OPTION_LISTENING_ADDRESS_REUSE: it means SO_REUSEPORT, which would
 * let a second server share the port and split a test's traffic. */
static int start_listener(struct state *st, const struct listen_spec *ls, const char *cert,
                          const char *key, int tls_max, struct listener *ret_value)
{
	struct MHD_OptionItem tls_opts[] = {
	        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key},
	        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert},
	        {MHD_OPTION_HTTPS_PRIORITIES, 0, tls_max == 12 ? "NORMAL:-VERS-TLS1.3" : "NORMAL"},
	        {MHD_OPTION_END, 0, NULL},
	};
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                 MHD_USE_POLL | MHD_USE_ERROR_LOG;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int r;

	r = resolve(ls, &addr, &addr_len);
	if (r < 0)
		return r;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (cert)
		flags |= MHD_USE_TLS;
	ret_value->daemon = MHD_start_daemon(
	        flags, 0, NULL, NULL, serve_access, st, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
	        (unsigned)CONNECTION_LIMIT, MHD_OPTION_LISTEN_BACKLOG_SIZE,
	        (unsigned)CONNECTION_LIMIT, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
	        MHD_OPTION_NOTIFY_COMPLETED, serve_completed, st, MHD_OPTION_ARRAY,
	        cert ? tls_opts : &tls_opts[3], MHD_OPTION_END);
	if (!ret_value->daemon)
		return -EADDRINUSE; /* MHD logged the reason */
	return describe_bound(ret_value);
}

/* Every connection is a thread and a descriptor: make room for the limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= 2 * CONNECTION_LIMIT + 64)
		return;
	rl.rlim_cur =
	        rl.rlim_max < 2 * CONNECTION_LIMIT + 64 ? rl.rlim_max : 2 * CONNECTION_LIMIT + 64;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

static int announce(const struct listener *l, const char *port_file, const char *what)
{
	char text[16];
	int r;

	if (port_file) {
		snprintf(text, sizeof(text), "%u\n", (unsigned)l->port);
		r = write_file_atomic(port_file, text);
		if (r < 0) {
			fprintf(stderr, "demo-target: Failed to write '%s': %s\n", port_file,
			        strerror(-r));
			return r;
		}
	}
	fprintf(stderr, "listening%s on %s\n", what, l->where);
	fflush(stderr);
	return 0;
}

static int write_pid(const char *pid_file)
{
	char text[32];
	int r;

	if (!pid_file)
		return 0;
	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	r = write_file_atomic(pid_file, text);
	if (r < 0)
		fprintf(stderr, "demo-target: Failed to write '%s': %s\n", pid_file, strerror(-r));
	return r;
}

static int load_tls(const struct config *cfg, char **ret_cert, char **ret_key)
{
	char *cert = NULL, *key = NULL;
	int r;

	r = read_pem(cfg->tls_cert, &cert);
	if (r < 0) {
		fprintf(stderr, "demo-target: Failed to read '%s': %s\n", cfg->tls_cert,
		        strerror(-r));
		return r;
	}
	r = read_pem(cfg->tls_key, &key);
	if (r < 0) {
		fprintf(stderr, "demo-target: Failed to read '%s': %s\n", cfg->tls_key,
		        strerror(-r));
		free(cert);
		return r;
	}
	*ret_cert = cert;
	*ret_key = key;
	return 0;
}

static int start_all(struct state *st, const struct config *cfg, const char *cert, const char *key,
                     struct listener *plain, struct listener *tls)
{
	int r;

	r = start_listener(st, &cfg->listen, NULL, NULL, 0, plain);
	if (r < 0) {
		fprintf(stderr, "demo-target: Failed to listen on '%s:%u': %s\n", cfg->listen.host,
		        (unsigned)cfg->listen.port, strerror(-r));
		return r;
	}
	if (cfg->tls) {
		r = start_listener(st, &cfg->tls_listen, cert, key, cfg->tls_max_version, tls);
		if (r < 0) {
			fprintf(stderr, "demo-target: Failed to listen (tls) on '%s:%u': %s\n",
			        cfg->tls_listen.host, (unsigned)cfg->tls_listen.port, strerror(-r));
			return r;
		}
	}
	r = write_pid(cfg->pid_file);
	if (r == 0)
		r = announce(plain, cfg->port_file, "");
	if (r == 0 && cfg->tls)
		r = announce(tls, cfg->tls_port_file, " (tls)");
	return r;
}

/* Blocks SIGINT/SIGTERM before any thread exists, so every MHD thread
 * inherits the mask and sigwait() in main() is the only receiver. */
static void block_signals(sigset_t *ret_value)
{
	sigemptyset(ret_value);
	sigaddset(ret_value, SIGINT);
	sigaddset(ret_value, SIGTERM);
	pthread_sigmask(SIG_BLOCK, ret_value, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int run(const struct config *cfg, const char *cert, const char *key)
{
	struct listener plain = {0}, tls = {0};
	struct state *st = NULL;
	sigset_t set;
	int r, sig;

	r = state_new(cfg, &st);
	if (r < 0) {
		fprintf(stderr, "demo-target: Failed to allocate state: %s\n", strerror(-r));
		return 1;
	}
	block_signals(&set);
	/* Timer slack (50 us by default) is inherited by threads created
	 * later; 1 ns makes each absolute-deadline sleep end when asked. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	raise_fd_limit();
	r = start_all(st, cfg, cert, key, &plain, &tls);
	if (r == 0)
		while (sigwait(&set, &sig) != 0)
			;
	state_stop(st); /* wakes sleeping requests so the daemons can join them */
	if (tls.daemon)
		MHD_stop_daemon(tls.daemon);
	if (plain.daemon)
		MHD_stop_daemon(plain.daemon);
	state_free(st);
	return r == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	char *cert = NULL, *key = NULL;
	struct config cfg;
	int r;

	r = cli_parse(argc, argv, &cfg);
	if (r != 0)
		return r > 0 ? 0 : 2;
	if (cfg.tls && load_tls(&cfg, &cert, &key) < 0)
		return 1;
	r = run(&cfg, cert, key);
	free(cert);
	free(key);
	return r;
}
