/* The migrations embedded by migrations/embed.py, in version order. */
#pragma once

struct store_migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct store_migration store_migrations[];
extern const int store_n_migrations;
