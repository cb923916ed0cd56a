/* probe_corpus: the `corpus` field of load-driving probe types
 * (lib/probe/probe_corpus.h). Pure: the file is read by the probe
 * through allowed_paths; this only checks and converts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe_corpus.h"
#include "lib/util/util.h"

/* corpus.items: checked now, so a bad item is refused at its path. */
static int read_items(struct spec_vctx *v, json_t *val, const char *path, void *base)
{
	struct spec_corpus *cp = base;
	struct loadgen_corpus *c = NULL;
	char msg[300] = "", ipath[256];
	const char *colon;
	int r;

	r = loadgen_corpus_from_json(val, &c, msg, sizeof(msg));
	loadgen_corpus_free(c);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		/* "[1].weight: must be ..." -> path "...items[1].weight" */
		colon = strstr(msg, ": ");
		snprintf(ipath, sizeof(ipath), "%s%.*s", path, colon ? (int)(colon - msg) : 0, msg);
		return spec_fail(v, val, ipath, "%s", colon ? colon + 2 : msg);
	}
	json_decref(cp->items);
	cp->items = json_deep_copy(val);
	return cp->items ? 0 : -ENOMEM;
}

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const char *const order_names[] = {"round-robin", "weighted-random", NULL};
static const struct spec_field corpus_fields[] = {
	{.key = "file",  .kind = FK_STRING, .flags = SPEC_FIELD_FILE,
	 .off = offsetof(struct spec_corpus, file), .max = SPEC_MAX_TEXT,
	 .check = spec_check_abs_path},
	{.key = "items", .kind = FK_CUSTOM, .flags = SPEC_FIELD_REQUESTS, .custom = read_items},
	{.key = "order", .kind = FK_MODE, .off = offsetof(struct spec_corpus, order),
	 .choices = order_names},
	{.key = "seed",  .kind = FK_INT, .off = offsetof(struct spec_corpus, seed), .min = 0,
	 .max = INT64_MAX},
};
/* clang-format on */

const struct spec_schema probe_corpus_schema = {
        .what = "a corpus",
        .fields = corpus_fields,
        .n = RD_ARRAY_SIZE(corpus_fields),
};

int probe_corpus_finish(struct spec_vctx *v, json_t *obj, const char *path,
                        const struct spec_probe *p)
{
	if (p->corpus.file && p->corpus.items)
		return spec_fail_at(v, obj, path, "corpus", "give file or items, not both");
	if (json_object_get(obj, "corpus") && !p->corpus.file && !p->corpus.items)
		return spec_fail_at(v, obj, path, "corpus", "give file or items");
	return 0;
}

int probe_corpus_parse(const struct spec_probe *sp, const char *buf, size_t len,
                       struct loadgen_corpus **ret, char *why, size_t whylen)
{
	char msg[300] = "";
	int r;

	if (buf)
		r = loadgen_corpus_parse_jsonl(buf, len, ret, msg, sizeof(msg));
	else
		r = loadgen_corpus_from_json(sp->corpus.items, ret, msg, sizeof(msg));
	if (r < 0)
		snprintf(why, whylen, "%s%s", buf ? "corpus.file:" : "corpus.items",
		         msg[0] ? msg : strerror(-r));
	return r;
}

int probe_corpus_read_done(const struct spec_probe *sp, int err, char *buf, size_t len,
                           const char *read_why, struct loadgen_corpus **ret, char *why,
                           size_t whylen)
{
	if (err < 0) {
		snprintf(why, whylen, "corpus.file %.200s %s", sp->corpus.file, read_why);
		return err;
	}
	err = probe_corpus_parse(sp, buf, len, ret, why, whylen);
	free(buf);
	return err;
}

void probe_corpus_config(const struct spec_probe *sp, const struct loadgen_corpus *c,
                         struct loadgen_config *cfg)
{
	cfg->order = sp->corpus.order == CORPUS_ORDER_WEIGHTED_RANDOM
	                     ? LOADGEN_ORDER_WEIGHTED_RANDOM
	                     : LOADGEN_ORDER_ROUND_ROBIN;
	cfg->seed = (uint64_t)sp->corpus.seed;
	cfg->corpus = c ? c->items : NULL;
	cfg->n_corpus = c ? c->n : 0;
}
