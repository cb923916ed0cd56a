/* linger: lingering close of refused connections (see linger.c). The
 * server owns one set; a socket handed over is duplicated, drained and
 * closed on the loop. Main loop thread only.
 */
#pragma once

#include <stddef.h>
#include <uv.h>

#define LINGER_MAX 256 /* sockets lingering at once */

struct lingering;

struct linger_set {
	uv_loop_t *loop;
	struct lingering *head;
	size_t n;
};

void linger_set_init(struct linger_set *set, uv_loop_t *loop);

/* Duplicates fd (borrowed: the caller still closes its own) and drains it
 * until the peer closes or the linger time is up. 0, -EBUSY when
 * LINGER_MAX sockets already linger, -ENOMEM, -EMFILE. */
int linger_add(struct linger_set *set, int fd);

/* Closes every lingering socket (their memory goes from close callbacks:
 * run the loop once more). */
void linger_set_deinit(struct linger_set *set);
