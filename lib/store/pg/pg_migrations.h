/* The PostgreSQL migrations embedded by migrations/embed.py (from
 * migrations/postgresql/), in version order. */
#pragma once

#include "lib/store/sqlite/sqlite_migrations.h" /* struct store_migration */

extern const struct store_migration pg_migrations[];
extern const int pg_n_migrations;
