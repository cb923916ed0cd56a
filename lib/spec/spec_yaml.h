/* spec_yaml: internal to the spec module. Turns YAML text into the same
 * jansson tree the JSON input gives, so one validator (spec.c) serves both
 * formats, and keeps a side map from tree nodes to where they came from
 * (line) and, for plain numeric scalars, what the user wrote ("2.40"), so
 * that string-typed fields can keep the original text.
 *
 * The converter knows nothing about the readiness schema: it only refuses
 * YAML features a spec must not depend on (anchors, aliases, merge keys,
 * custom tags, several documents, duplicate or non-string keys) and
 * enforces the size and depth caps of spec.h. It does no I/O.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/spec/spec.h"

/* Node -> source information. Opaque; NULL means "no information" (the
 * JSON path) and every lookup accepts it. */
struct spec_srcmap;

/* Parses len bytes of YAML (need not be NUL-terminated; the caller has
 * already checked size, NUL bytes and UTF-8). On success *ret_doc is a new
 * reference and *ret_map a new map the caller frees with
 * spec_srcmap_free(). Returns 0, -EINVAL with *err filled (path, message,
 * 1-based line), or -ENOMEM. Any thread. */
int spec_yaml_parse(const char *buf, size_t len, json_t **ret_doc, struct spec_srcmap **ret_map,
                    struct spec_error *err);

/* Frees the map and the node references it holds. Accepts NULL. */
void spec_srcmap_free(struct spec_srcmap *m);

/* 1-based line where node started, or 0 if unknown. */
int spec_srcmap_line(const struct spec_srcmap *m, const json_t *node);

/* 1-based line of the key `key` of the mapping obj, or 0. Values that
 * are jansson singletons (true, false, null) have no line of their own;
 * their key's line stands in. */
int spec_srcmap_key_line(const struct spec_srcmap *m, const json_t *obj, const char *key);

/* The text a plain numeric scalar was written as ("2.40" for a real 2.4),
 * or NULL for any other node. Borrowed from the map. */
const char *spec_srcmap_text(const struct spec_srcmap *m, const json_t *node);

/* Path building shared by the converter and the validator, so both name a
 * field the same way: `probes[2].rate`, `target.headers.Content-Type`, and
 * keys outside [A-Za-z0-9_-] quoted: `expect_json["$.status"]`. The result
 * is truncated to len (paths are for humans). */
void spec_path_key(char *out, size_t len, const char *parent, const char *key);
void spec_path_index(char *out, size_t len, const char *parent, size_t index);

/* True if buf[0..len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF). On false, *ret_bad is the offset of the first
 * bad byte. */
bool spec_utf8_valid(const char *buf, size_t len, size_t *ret_bad);
