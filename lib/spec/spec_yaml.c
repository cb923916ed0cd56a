/* spec_yaml: YAML text -> jansson tree for the spec validator (see
 * spec_yaml.h). Built on libyaml's event parser rather than its document
 * loader so that anchors, aliases and merge keys are refused before they
 * can expand (a "billion laughs" document is never built), and so that
 * depth and size caps hold while parsing, not after.
 *
 * Scalars are resolved by a deliberately small rule set (docs/spec.md):
 * quoted scalars are strings; plain ones are null, true/false, decimal
 * integers, decimal floats, or strings. Nothing else of YAML 1.1's implicit
 * typing (yes/no, octal, sexagesimal, timestamps) applies, so `version:
 * 2.4.0` and `tested: 2026-11-20` stay strings. This file must not know the
 * readiness schema; that is spec.c's job.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/spec/spec_yaml.h"
#include "lib/util/util.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

/* Keyed by address: a node (the entry holds a reference, so the address
 * stays unique while mapped) or a key string inside a mapping (kept alive
 * by the mapping's entry; a key has its own line when its value is a
 * shared singleton such as true or null). */
struct srcmap_entry {
	const void *addr;
	json_t *ref;
	char *text; /* plain numeric scalars only */
	int line;
};

struct spec_srcmap {
	struct srcmap_entry *v;
	size_t n;
	size_t cap;
};

/* One level of the path from the root to the node being converted. */
struct frame {
	bool seq;
	size_t index;
	const char *key; /* borrowed from the key's event, NULL before the first key */
};

struct conv {
	yaml_parser_t parser;
	struct spec_srcmap *map;
	struct spec_error *err;
	struct frame frames[SPEC_MAX_DEPTH + 1];
	int depth;
};

/* --- paths and UTF-8 (shared with spec.c) --- */

static bool is_plain_key(const char *key)
{
	if (*key == '\0')
		return false;
	for (const char *p = key; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	}
	return true;
}

void spec_path_key(char *out, size_t len, const char *parent, const char *key)
{
	if (!is_plain_key(key))
		snprintf(out, len, "%s[\"%s\"]", parent, key);
	else if (parent[0] == '\0')
		snprintf(out, len, "%s", key);
	else
		snprintf(out, len, "%s.%s", parent, key);
}

void spec_path_index(char *out, size_t len, const char *parent, size_t index)
{
	snprintf(out, len, "%s[%zu]", parent, index);
}

/* Length of the UTF-8 sequence starting at s[0..avail), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past Unicode. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool spec_utf8_valid(const char *buf, size_t len, size_t *ret_bad)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq_len(s + i, len - i);

		if (n == 0) {
			*ret_bad = i;
			return false;
		}
		i += n;
	}
	return true;
}

/* --- the source map --- */

static struct spec_srcmap *srcmap_new(void)
{
	return calloc(1, sizeof(struct spec_srcmap));
}

void spec_srcmap_free(struct spec_srcmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		json_decref(m->v[i].ref);
		free(m->v[i].text);
	}
	free(m->v);
	free(m);
}

static int srcmap_add(struct spec_srcmap *m, const void *addr, json_t *ref, int line,
                      const char *text)
{
	char *copy = NULL;

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct srcmap_entry *v = realloc(m->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	if (text) {
		copy = strdup(text);
		if (!copy)
			return -ENOMEM;
	}
	m->v[m->n++] = (struct srcmap_entry){
	        .addr = addr, .ref = json_incref(ref), .text = copy, .line = line};
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct srcmap_entry *)a)->addr;
	uintptr_t y = (uintptr_t)((const struct srcmap_entry *)b)->addr;

	return (x > y) - (x < y);
}

static const struct srcmap_entry *srcmap_find(const struct spec_srcmap *m, const void *addr)
{
	struct srcmap_entry key = {.addr = addr};

	if (!m || !addr || m->n == 0)
		return NULL;
	return bsearch(&key, m->v, m->n, sizeof(*m->v), entry_cmp);
}

int spec_srcmap_line(const struct spec_srcmap *m, const json_t *node)
{
	const struct srcmap_entry *e = srcmap_find(m, node);

	return e ? e->line : 0;
}

int spec_srcmap_key_line(const struct spec_srcmap *m, const json_t *obj, const char *key)
{
	const struct srcmap_entry *e;

	if (!m || !json_is_object(obj))
		return 0;
	e = srcmap_find(m, json_object_iter_key(json_object_iter_at((json_t *)obj, key)));
	return e ? e->line : 0;
}

const char *spec_srcmap_text(const struct spec_srcmap *m, const json_t *node)
{
	const struct srcmap_entry *e = srcmap_find(m, node);

	return e ? e->text : NULL;
}

/* --- errors --- */

static void conv_path(const struct conv *c, char *out, size_t len)
{
	char tmp[sizeof(c->err->path)];

	out[0] = '\0';
	for (int i = 0; i < c->depth; i++) {
		const struct frame *f = &c->frames[i];

		snprintf(tmp, sizeof(tmp), "%s", out);
		if (f->seq)
			spec_path_index(out, len, tmp, f->index);
		else if (f->key)
			spec_path_key(out, len, tmp, f->key);
	}
}

static int conv_fail(struct conv *c, size_t line0, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Fills the error with the current path; line0 is libyaml's 0-based line. */
static int conv_fail(struct conv *c, size_t line0, const char *fmt, ...)
{
	va_list ap;

	conv_path(c, c->err->path, sizeof(c->err->path));
	va_start(ap, fmt);
	vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
	va_end(ap);
	c->err->line = (int)line0 + 1;
	return -EINVAL;
}

/* A syntax error is about the text, not a field: it has a line and no
 * path (the parser's position, "service[0]", would name a field that
 * may not exist), as a JSON syntax error. */
static int next_event(struct conv *c, yaml_event_t *ev)
{
	const yaml_parser_t *p = &c->parser;

	if (yaml_parser_parse(&c->parser, ev))
		return 0;
	if (p->error == YAML_MEMORY_ERROR)
		return -ENOMEM;
	c->err->syntax = true;
	if (p->context)
		conv_fail(c, p->problem_mark.line, "YAML syntax error: %s %s", p->context,
		          p->problem ? p->problem : "");
	else
		conv_fail(c, p->problem_mark.line, "YAML syntax error: %s",
		          p->problem ? p->problem : "unknown problem");
	c->err->path[0] = '\0';
	return -EINVAL;
}

/* --- scalars --- */

static bool all_digits(const char *s, const char **ret_end)
{
	const char *p = s;

	while (*p >= '0' && *p <= '9')
		p++;
	*ret_end = p;
	return p > s;
}

/* [-+]?(0|[1-9][0-9]*): no octal or hex surprises. */
static bool is_decimal_int(const char *s)
{
	const char *end;

	if (*s == '-' || *s == '+')
		s++;
	if (!all_digits(s, &end) || *end != '\0')
		return false;
	return s[0] != '0' || s[1] == '\0';
}

/* [-+]? (digits [. digits?] | . digits) ([eE] [-+]? digits)?, with a dot or
 * an exponent (else it is an integer). */
static bool is_decimal_float(const char *s)
{
	const char *p = s, *end;
	bool mant = false, dot = false, exp = false;

	if (*p == '-' || *p == '+')
		p++;
	if (all_digits(p, &end))
		mant = true;
	p = end;
	if (*p == '.') {
		dot = true;
		if (all_digits(p + 1, &end))
			mant = true;
		p = end;
	}
	if (mant && (*p == 'e' || *p == 'E')) {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!all_digits(p, &end))
			return false;
		p = end;
		exp = true;
	}
	return mant && (dot || exp) && *p == '\0';
}

static bool is_null_word(const char *s)
{
	return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* Returns 1 (true), 0 (false) or -1 (not a boolean). */
static int bool_word(const char *s)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return 1;
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return 0;
	return -1;
}

static int make_real(struct conv *c, const char *s, size_t line0, json_t **ret);

/* An integer past int64 becomes a real (its text is kept): a string field
 * still reads the digits, an integer field reports its range. */
static int make_int(struct conv *c, const char *s, size_t line0, json_t **ret)
{
	int64_t v;
	int r = rd_parse_int64(*s == '+' ? s + 1 : s, INT64_MIN, INT64_MAX, &v);

	if (r == -ERANGE)
		return make_real(c, s, line0, ret);
	if (r < 0)
		return conv_fail(c, line0, "'%.40s' is not an integer", s);
	*ret = json_integer(v);
	return *ret ? 0 : -ENOMEM;
}

static int make_real(struct conv *c, const char *s, size_t line0, json_t **ret)
{
	double v;

	if (rd_parse_double(s, &v) < 0)
		return conv_fail(c, line0, "number %.40s is out of range", s);
	*ret = json_real(v);
	return *ret ? 0 : -ENOMEM;
}

/* Resolves a plain, untagged scalar. *ret_numeric tells the caller to keep
 * the original text. */
static int resolve_plain(struct conv *c, const char *s, size_t len, size_t line0, json_t **ret,
                         bool *ret_numeric)
{
	int b;

	*ret_numeric = false;
	if (is_null_word(s)) {
		*ret = json_null();
		return 0;
	}
	b = bool_word(s);
	if (b >= 0) {
		*ret = json_boolean(b);
		return 0;
	}
	if (is_decimal_int(s)) {
		*ret_numeric = true;
		return make_int(c, s, line0, ret);
	}
	if (is_decimal_float(s)) {
		*ret_numeric = true;
		return make_real(c, s, line0, ret);
	}
	*ret = json_stringn_nocheck(s, len);
	return *ret ? 0 : -ENOMEM;
}

/* Resolves a scalar with an explicit standard tag (!!str, !!int, ...). */
static int resolve_tagged(struct conv *c, const char *tag, const char *s, size_t len, size_t line0,
                          json_t **ret, bool *ret_numeric)
{
	const char *t = tag + strlen(TAG_PREFIX);

	*ret_numeric = false;
	if (!strcmp(t, "str")) {
		*ret = json_stringn_nocheck(s, len);
		return *ret ? 0 : -ENOMEM;
	}
	if (!strcmp(t, "null") && is_null_word(s)) {
		*ret = json_null();
		return 0;
	}
	if (!strcmp(t, "bool") && bool_word(s) >= 0) {
		*ret = json_boolean(bool_word(s));
		return 0;
	}
	if ((!strcmp(t, "int") || !strcmp(t, "float")) && is_decimal_int(s)) {
		*ret_numeric = true;
		return make_int(c, s, line0, ret);
	}
	if (!strcmp(t, "float") && is_decimal_float(s)) {
		*ret_numeric = true;
		return make_real(c, s, line0, ret);
	}
	/* .nan and .inf end up here too: a spec has no use for them. */
	return conv_fail(c, line0, "'%.40s' is not a valid !!%s (only finite decimal numbers)", s,
	                 t);
}

static bool tag_allowed(const char *tag)
{
	static const char *const ok[] = {"str", "int", "float", "bool", "null"};

	if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0)
		return false;
	for (size_t i = 0; i < RD_ARRAY_SIZE(ok); i++) {
		if (!strcmp(tag + strlen(TAG_PREFIX), ok[i]))
			return true;
	}
	return false;
}

/* Checks shared by keys and values: size, NUL, UTF-8, tag. */
static int check_scalar(struct conv *c, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t len = ev->data.scalar.length, bad;
	size_t line0 = ev->start_mark.line;

	if (ev->data.scalar.anchor)
		return conv_fail(c, line0, "YAML anchors and aliases are not supported");
	if (len > SPEC_MAX_STRING)
		return conv_fail(c, line0, "string longer than %d bytes", SPEC_MAX_STRING);
	if (memchr(s, '\0', len))
		return conv_fail(c, line0, "strings must not contain NUL characters");
	if (!spec_utf8_valid(s, len, &bad))
		return conv_fail(c, line0, "string is not valid UTF-8");
	if (tag && !tag_allowed(tag))
		return conv_fail(c, line0, "YAML tag '%.64s' is not supported", tag);
	return 0;
}

static int conv_scalar(struct conv *c, const yaml_event_t *ev, json_t **ret)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t len = ev->data.scalar.length;
	size_t line0 = ev->start_mark.line;
	bool numeric = false;
	json_t *node;
	int r;

	r = check_scalar(c, ev);
	if (r < 0)
		return r;
	if (tag)
		r = resolve_tagged(c, tag, s, len, line0, &node, &numeric);
	else if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		r = (node = json_stringn_nocheck(s, len)) ? 0 : -ENOMEM;
	else
		r = resolve_plain(c, s, len, line0, &node, &numeric);
	if (r < 0)
		return r;
	/* null, true and false are jansson singletons: one address, many
	 * places, so they cannot be mapped (the validator falls back to the
	 * enclosing container's line). */
	if (json_is_string(node) || json_is_number(node))
		r = srcmap_add(c->map, node, node, (int)line0 + 1, numeric ? s : NULL);
	if (r < 0) {
		json_decref(node);
		return r;
	}
	*ret = node;
	return 0;
}

/* --- containers --- */

static int conv_node(struct conv *c, const yaml_event_t *ev, json_t **ret);

static int push_frame(struct conv *c, const yaml_event_t *ev, bool seq)
{
	const yaml_char_t *anchor =
	        seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
	const yaml_char_t *tag = seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag;

	if (anchor)
		return conv_fail(c, ev->start_mark.line,
		                 "YAML anchors and aliases are not supported");
	if (tag)
		return conv_fail(c, ev->start_mark.line, "YAML tag '%.64s' is not supported",
		                 (const char *)tag);
	if (c->depth >= SPEC_MAX_DEPTH)
		return conv_fail(c, ev->start_mark.line, "nesting deeper than %d levels",
		                 SPEC_MAX_DEPTH);
	c->frames[c->depth++] = (struct frame){.seq = seq};
	return 0;
}

/* A mapping key must be a string scalar, not a merge key, not repeated. */
static int check_key(struct conv *c, const yaml_event_t *kev, const json_t *obj)
{
	const char *k = (const char *)kev->data.scalar.value;
	bool plain = kev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	const char *tag = (const char *)kev->data.scalar.tag;
	size_t line0 = kev->start_mark.line;
	int r;

	if (kev->type == YAML_ALIAS_EVENT)
		return conv_fail(c, line0, "YAML anchors and aliases are not supported");
	if (kev->type != YAML_SCALAR_EVENT)
		return conv_fail(c, line0, "mapping keys must be strings, not %s",
		                 kev->type == YAML_SEQUENCE_START_EVENT ? "lists" : "mappings");
	r = check_scalar(c, kev);
	if (r < 0)
		return r;
	c->frames[c->depth - 1].key = k;
	if (plain && !tag && !strcmp(k, "<<"))
		return conv_fail(c, line0, "YAML merge keys (<<) are not supported");
	if (tag ? strcmp(tag, TAG_PREFIX "str") != 0
	        : plain && (is_null_word(k) || bool_word(k) >= 0 || is_decimal_int(k) ||
	                    is_decimal_float(k)))
		return conv_fail(c, line0, "mapping key '%.40s' is not a string (quote it)", k);
	if (json_object_get(obj, k))
		return conv_fail(c, line0, "duplicate key");
	return 0;
}

/* Reads one key and its value into obj. Returns 1 at the end of the mapping. */
static int conv_pair(struct conv *c, json_t *obj)
{
	yaml_event_t kev, vev;
	json_t *val = NULL;
	const char *k;
	int r;

	r = next_event(c, &kev);
	if (r < 0)
		return r;
	if (kev.type == YAML_MAPPING_END_EVENT) {
		yaml_event_delete(&kev);
		return 1;
	}
	r = check_key(c, &kev, obj);
	if (r < 0)
		goto out;
	k = (const char *)kev.data.scalar.value;
	r = next_event(c, &vev);
	if (r < 0)
		goto out;
	r = conv_node(c, &vev, &val);
	yaml_event_delete(&vev);
	if (r < 0)
		goto out;
	if (json_object_setn_new_nocheck(obj, k, kev.data.scalar.length, val) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = srcmap_add(c->map, json_object_iter_key(json_object_iter_at(obj, k)), NULL,
	               (int)kev.start_mark.line + 1, NULL);
out:
	/* The key's text dies with its event: the path must not point at it. */
	c->frames[c->depth - 1].key = NULL;
	yaml_event_delete(&kev);
	return r;
}

static int conv_mapping(struct conv *c, const yaml_event_t *start, json_t **ret)
{
	json_t *obj;
	int r;

	r = push_frame(c, start, false);
	if (r < 0)
		return r;
	obj = json_object();
	if (!obj)
		return -ENOMEM;
	r = srcmap_add(c->map, obj, obj, (int)start->start_mark.line + 1, NULL);
	while (r == 0)
		r = conv_pair(c, obj);
	if (r < 0) {
		json_decref(obj);
		return r;
	}
	c->depth--;
	*ret = obj;
	return 0;
}

/* Reads one item into arr. Returns 1 at the end of the sequence. */
static int conv_item(struct conv *c, json_t *arr)
{
	yaml_event_t ev;
	json_t *val = NULL;
	int r;

	r = next_event(c, &ev);
	if (r < 0)
		return r;
	if (ev.type == YAML_SEQUENCE_END_EVENT) {
		yaml_event_delete(&ev);
		return 1;
	}
	c->frames[c->depth - 1].index = json_array_size(arr);
	r = conv_node(c, &ev, &val);
	yaml_event_delete(&ev);
	if (r == 0 && json_array_append_new(arr, val) < 0)
		r = -ENOMEM;
	return r;
}

static int conv_sequence(struct conv *c, const yaml_event_t *start, json_t **ret)
{
	json_t *arr;
	int r;

	r = push_frame(c, start, true);
	if (r < 0)
		return r;
	arr = json_array();
	if (!arr)
		return -ENOMEM;
	r = srcmap_add(c->map, arr, arr, (int)start->start_mark.line + 1, NULL);
	while (r == 0)
		r = conv_item(c, arr);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	c->depth--;
	*ret = arr;
	return 0;
}

static int conv_node(struct conv *c, const yaml_event_t *ev, json_t **ret)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return conv_scalar(c, ev, ret);
	case YAML_MAPPING_START_EVENT:
		return conv_mapping(c, ev, ret);
	case YAML_SEQUENCE_START_EVENT:
		return conv_sequence(c, ev, ret);
	case YAML_ALIAS_EVENT:
		return conv_fail(c, ev->start_mark.line,
		                 "YAML anchors and aliases are not supported");
	default:
		return conv_fail(c, ev->start_mark.line, "unexpected YAML event");
	}
}

/* --- documents --- */

/* Expects an event of type want; anything else is a structural error. */
static int expect_event(struct conv *c, yaml_event_type_t want, yaml_event_t *ev)
{
	int r = next_event(c, ev);

	if (r < 0)
		return r;
	if (ev->type == want)
		return 0;
	r = ev->type == YAML_DOCUMENT_START_EVENT
	            ? conv_fail(c, ev->start_mark.line, "more than one YAML document")
	    : ev->type == YAML_STREAM_END_EVENT
	            ? conv_fail(c, ev->start_mark.line, "the document is empty")
	            : conv_fail(c, ev->start_mark.line, "unexpected YAML structure");
	yaml_event_delete(ev);
	return r;
}

static int conv_stream(struct conv *c, json_t **ret)
{
	yaml_event_t ev;
	json_t *root = NULL;
	int r;

	r = expect_event(c, YAML_STREAM_START_EVENT, &ev);
	if (r < 0)
		return r;
	yaml_event_delete(&ev);
	r = expect_event(c, YAML_DOCUMENT_START_EVENT, &ev);
	if (r < 0)
		return r;
	yaml_event_delete(&ev);
	r = next_event(c, &ev);
	if (r < 0)
		return r;
	r = conv_node(c, &ev, &root);
	yaml_event_delete(&ev);
	if (r < 0)
		return r;
	r = expect_event(c, YAML_DOCUMENT_END_EVENT, &ev);
	if (r == 0) {
		yaml_event_delete(&ev);
		r = expect_event(c, YAML_STREAM_END_EVENT, &ev);
	}
	if (r < 0) {
		json_decref(root);
		return r;
	}
	yaml_event_delete(&ev);
	*ret = root;
	return 0;
}

int spec_yaml_parse(const char *buf, size_t len, json_t **ret_doc, struct spec_srcmap **ret_map,
                    struct spec_error *err)
{
	struct conv c = {.err = err};
	json_t *root = NULL;
	int r;

	c.map = srcmap_new();
	if (!c.map)
		return -ENOMEM;
	if (!yaml_parser_initialize(&c.parser)) {
		spec_srcmap_free(c.map);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&c.parser, (const unsigned char *)buf, len);
	r = conv_stream(&c, &root);
	yaml_parser_delete(&c.parser);
	if (r < 0) {
		spec_srcmap_free(c.map);
		return r;
	}
	if (c.map->n > 0)
		qsort(c.map->v, c.map->n, sizeof(*c.map->v), entry_cmp);
	*ret_doc = root;
	*ret_map = c.map;
	return 0;
}
