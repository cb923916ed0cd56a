/* linger: the lingering close of a connection refused before its body
 * was read (RFC 9112, section 9.6). Closing a socket with unread input
 * makes the kernel send a reset, and a client that is still sending then
 * loses our answer (its kernel drops the 401 it had not read yet). So
 * the server keeps a duplicate of the socket after libmicrohttpd is done
 * with it (MHD has already sent its FIN), reads and discards what the
 * client still sends, and closes once the client closes, after
 * LINGER_MS, or after LINGER_MAX_BYTES, whichever comes first. Nothing
 * is kept: the discarded bytes cost no memory.
 *
 * Bounded: at most LINGER_MAX sockets linger at once; beyond that a
 * socket closes at once (the reset is then the client's problem).
 * Main loop thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "linger.h"
#include "lib/util/util.h"

#define LINGER_MS        2000
#define LINGER_MAX_BYTES (4 * 1024 * 1024)

struct lingering {
	uv_poll_t poll;
	uv_timer_t timer;
	int fd;
	int open_handles;
	size_t drained;
	struct linger_set *set; /* NULL once the set is gone */
	struct lingering *next, *prev;
};

void linger_set_init(struct linger_set *set, uv_loop_t *loop)
{
	set->loop = loop;
	set->head = NULL;
	set->n = 0;
}

static void on_closed(uv_handle_t *h)
{
	struct lingering *l = h->data;

	if (--l->open_handles == 0)
		free(l);
}

static void linger_end(struct lingering *l)
{
	struct linger_set *set = l->set;

	if (set) {
		if (l->prev)
			l->prev->next = l->next;
		else
			set->head = l->next;
		if (l->next)
			l->next->prev = l->prev;
		set->n--;
		l->set = NULL;
	}
	uv_poll_stop(&l->poll);
	uv_timer_stop(&l->timer);
	close(l->fd);
	uv_close((uv_handle_t *)&l->poll, on_closed);
	uv_close((uv_handle_t *)&l->timer, on_closed);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct lingering *l = h->data;
	char buf[16384];
	ssize_t n;

	for (;;) {
		n = read(l->fd, buf, sizeof(buf));
		if (n > 0 && (l->drained += (size_t)n) < LINGER_MAX_BYTES)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR) && status == 0)
			return;
		break; /* the client closed, an error, or enough */
	}
	linger_end(l);
}

static void on_timeout(uv_timer_t *t)
{
	linger_end(t->data);
}

int linger_add(struct linger_set *set, int fd)
{
	struct lingering *l;
	int dup_fd;

	if (set->n >= LINGER_MAX)
		return -EBUSY;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0 || uv_poll_init_socket(set->loop, &l->poll, dup_fd) < 0) {
		if (dup_fd >= 0)
			close(dup_fd);
		free(l);
		return -EMFILE;
	}
	l->fd = dup_fd;
	l->poll.data = l;
	uv_timer_init(set->loop, &l->timer);
	l->timer.data = l;
	l->open_handles = 2;
	l->set = set;
	l->next = set->head;
	if (l->next)
		l->next->prev = l;
	set->head = l;
	set->n++;
	uv_poll_start(&l->poll, UV_READABLE | UV_DISCONNECT, on_readable);
	uv_timer_start(&l->timer, on_timeout, LINGER_MS, 0);
	return 0;
}

void linger_set_deinit(struct linger_set *set)
{
	while (set->head)
		linger_end(set->head);
}
