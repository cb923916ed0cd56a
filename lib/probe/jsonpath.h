/* jsonpath: the tiny path language of the http probe's expect_json:
 * "$" followed by ".key" and "[index]" steps ("$.data.items[0].name").
 * No wildcards, filters, recursion or quoting: a step's key runs to the
 * next '.' or '['. Bounded: at most JSONPATH_MAX_LEN bytes and
 * JSONPATH_MAX_STEPS steps.
 *
 * Pure functions on jansson values; no I/O.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#define JSONPATH_MAX_LEN   512
#define JSONPATH_MAX_STEPS 32

/* Finds the value at path in doc. Returns 0 with *ret_value borrowed from
 * doc, -ENOENT when a step does not exist (why says which), -EINVAL when
 * the path does not parse (why says where). why may be NULL. */
int jsonpath_get(json_t *doc, const char *path, json_t **ret_value, char *why, size_t whylen);

/* JSON equality where numbers compare by value (1 equals 1.0). */
bool jsonpath_equal(const json_t *a, const json_t *b);
