/* promql: a small PromQL parser for the rule analysis of the
 * prometheus-rules probe and the label matchers of prometheus-alerts. It
 * reads what rule expressions are made of (vector selectors with their
 * matchers, ranges, offsets and @, subqueries, binary operators with
 * bool/on/ignoring/group_left/group_right, aggregations with by/without
 * and a parameter, function calls, numbers, strings with escapes, unary
 * signs, parentheses) into a tree, and writes a tree back as PromQL text,
 * optionally without the comparisons to a scalar (the filters an alert
 * threshold adds). It does not type-check and does not know every
 * function: Prometheus evaluates what this parser only finds the parts
 * of. Pure functions, any thread.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PROMQL_MAX_LEN      (64 * 1024) /* bytes of an expression */
#define PROMQL_MAX_DEPTH    64          /* nesting of the tree */
#define PROMQL_MAX_NODES    4096        /* operators and operands of an expression */
#define PROMQL_MAX_MATCHERS 64          /* label matchers of one selector */

enum promql_kind {
	PQ_NUMBER,    /* text: as written */
	PQ_STRING,    /* text: the value, unescaped */
	PQ_SELECTOR,  /* text: metric name or NULL; matchers; range (matrix); offset; at */
	PQ_SUBQUERY,  /* a[range:step]; offset; at */
	PQ_CALL,      /* text: function name; args */
	PQ_AGGREGATE, /* text: operator; args (parameter first); grouping */
	PQ_BINARY,    /* op; a, b; modifiers */
	PQ_UNARY,     /* op '-' or '+'; a */
	PQ_PAREN,     /* a */
};

enum promql_match_op { PQ_EQ, PQ_NE, PQ_RE, PQ_NRE };

struct promql_matcher {
	char *name;
	enum promql_match_op op;
	char *value;
};

enum promql_binop {
	PQ_ADD,
	PQ_SUB,
	PQ_MUL,
	PQ_DIV,
	PQ_MOD,
	PQ_POW,
	PQ_ATAN2,
	PQ_CMP_EQ,
	PQ_CMP_NE,
	PQ_CMP_GT,
	PQ_CMP_LT,
	PQ_CMP_GE,
	PQ_CMP_LE,
	PQ_AND,
	PQ_OR,
	PQ_UNLESS,
};

enum promql_matching { PQ_MATCH_DEFAULT, PQ_MATCH_ON, PQ_MATCH_IGNORING };
enum promql_group { PQ_GROUP_NONE, PQ_GROUP_LEFT, PQ_GROUP_RIGHT };

struct promql_labels {
	char **names;
	size_t n;
};

struct promql_node {
	enum promql_kind kind;
	size_t pos; /* byte offset of its first token in the expression */
	char *text;
	struct promql_matcher *matchers;
	size_t n_matchers;
	char *range;  /* selectors (matrix) and subqueries: "5m"; NULL: instant */
	char *step;   /* subqueries: "1m", "" for the default */
	char *offset; /* "5m", "-1h" or NULL */
	char *at;     /* "1700000000", "start()", "end()" or NULL */
	struct promql_node **args;
	size_t n_args;
	bool without, has_grouping; /* aggregations */
	struct promql_labels grouping;
	enum promql_binop op; /* binary; unary: PQ_SUB or PQ_ADD */
	bool bool_mod;
	enum promql_matching matching;
	struct promql_labels match_labels;
	enum promql_group group;
	struct promql_labels include; /* group_left(...) labels */
	struct promql_node *a, *b;
};

struct promql_error {
	size_t pos; /* byte offset where parsing stopped */
	char message[160];
};

/* Parses len bytes of PromQL. Returns 0 with *ret a new tree; -EINVAL
 * with err saying what and where; -ENOMEM. */
int promql_parse(const char *s, size_t len, struct promql_node **ret, struct promql_error *err);

void promql_free(struct promql_node *n);

/* Parses one label matcher, `name="value"` (also !=, =~, !~; any of
 * PromQL's quotes). Returns 0, -EINVAL with err, -ENOMEM. */
int promql_parse_matcher(const char *s, struct promql_matcher *ret, struct promql_error *err);

void promql_matcher_clear(struct promql_matcher *m);

/* The operator as written ("+", "==", "and"). */
const char *promql_binop_name(enum promql_binop op);

/* A comparison (==, !=, >, <, >=, <=). */
bool promql_binop_is_comparison(enum promql_binop op);

/* Evaluates to a scalar: a number, time(), scalar(...), pi(), or an
 * operation, sign or parenthesis of scalars only. */
bool promql_is_scalar(const struct promql_node *n);

/* How promql_format() writes a tree. */
enum {
	/* A comparison without bool between a vector and a scalar is written
	 * as its vector side alone: what the threshold filters. */
	PROMQL_FMT_NO_FILTERS = 0x1,
	/* The top node, when it is a comparison of two vectors, is written
	 * with bool: every matched pair, whatever the comparison says. */
	PROMQL_FMT_TOP_BOOL = 0x2,
};

/* The tree as PromQL text (a new string), or NULL for ENOMEM. */
char *promql_format(const struct promql_node *n, unsigned flags);

/* The selector as an instant selector, without range, offset and @
 * (`name{a="b"}`); a new string or NULL. */
char *promql_format_selector(const struct promql_node *sel);

/* Calls cb for every vector selector, leftmost first, except those under
 * absent() and absent_over_time(), whose point is to select nothing.
 * Stops at and returns the first nonzero cb result. */
typedef int (*promql_visit_cb)(void *userdata, const struct promql_node *n);
int promql_each_selector(const struct promql_node *n, promql_visit_cb cb, void *userdata);

/* Calls cb for every binary operation between two vectors whose result
 * says whether their series match (arithmetic, comparison, and), inner
 * ones first. `or` and `unless` are skipped: an empty side or no match
 * is what they are for. Stops at the first nonzero cb result. */
int promql_each_vector_match(const struct promql_node *n, promql_visit_cb cb, void *userdata);

/* Why a vector-vector operation matched nothing, from the instant query
 * results (arrays of {metric: {...}}) of its two sides: the label names
 * only one side carries (outside ignoring/inside on), or those whose
 * values differ, and how to match them. Writes a sentence to buf.
 * Returns true when the label names differ: no pair can ever match,
 * whatever the values; false when only today's values differ. */
bool promql_explain_mismatch(const struct promql_node *op, json_t *left, json_t *right, char *buf,
                             size_t len);
