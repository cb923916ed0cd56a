/* probe_corpus: the `corpus` field shared by the probe types that drive
 * the load engine (docs/spec.md, "Request corpora"): its spec schema
 * (file through allowed_paths, or inline items checked at submission,
 * order, seed), its rule, and turning the file's text or the items into
 * the engine's corpus. A type adds PROBE_F_CORPUS to its fields, calls
 * probe_corpus_finish() from its finish, reads corpus.file with
 * policy_read_file_async() like ca_file, and hands probe_corpus_parse()'s
 * result to probe_corpus_config().
 */
#pragma once

#include <stddef.h>

#include "lib/loadgen/loadgen.h"
#include "lib/spec/spec_schema.h"

extern const struct spec_schema probe_corpus_schema;

/* clang-format off */
#define PROBE_F_CORPUS \
	{.key = "corpus", .kind = FK_OBJECT, .off = SPEC_P(corpus), .sub = &probe_corpus_schema}
/* clang-format on */

/* The corpus's rule across its fields: file or items, not both, not
 * neither. 0 or -EINVAL (recorded at obj's `corpus`). */
int probe_corpus_finish(struct spec_vctx *v, json_t *obj, const char *path,
                        const struct spec_probe *p);

/* The engine's corpus from corpus.file's text (buf, len) or, with buf
 * NULL, from corpus.items. Returns 0, or -errno with the probe's error
 * in why ("corpus.file:3: method: ..."). */
int probe_corpus_parse(const struct spec_probe *sp, const char *buf, size_t len,
                       struct loadgen_corpus **ret, char *why, size_t whylen);

/* corpus.file's read (policy_read_file_async's callback arguments; buf
 * is taken and freed) turned into the engine's corpus: 0, or -errno with
 * the probe's error in why ("corpus.file PATH WHY", or a parse error as
 * probe_corpus_parse gives it). The one step every engine-driving type
 * takes between reading the file and its next step. */
int probe_corpus_read_done(const struct spec_probe *sp, int err, char *buf, size_t len,
                           const char *read_why, struct loadgen_corpus **ret, char *why,
                           size_t whylen);

/* Sets cfg's corpus, order and seed (c may be NULL: no corpus). */
void probe_corpus_config(const struct spec_probe *sp, const struct loadgen_corpus *c,
                         struct loadgen_config *cfg);
