/* store-faulty: a store backend for tests that wraps another one and
 * refuses writes on demand, as a full disk or a read-only file would.
 * Reads always pass through. Tests of the scheduler use it to make the
 * store fail without knowing which backend is behind it.
 */
#pragma once

#include <stdbool.h>

struct store;

/* Wraps inner (stolen: freed with the wrapper). Returns the wrapper, or
 * NULL (and inner freed) when out of memory. */
struct store *store_faulty_wrap(struct store *inner);

/* From now on every write fails with err (-errno; 0: writes pass again)
 * and store_errcause() says cause (borrowed, copied). */
void store_faulty_refuse(struct store *st, int err, const char *cause);
