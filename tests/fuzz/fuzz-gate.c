/* fuzz-gate: the gate criteria language (gate_parse with and without a
 * probe, gate_parse_slo). Expressions come from specs and waivers, so any
 * string must parse or fail with a sentence. A parsed expression's
 * canonical text (gate_format) must parse again to the same text: waivers
 * match gates by that text. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lib/gate/gate.h"

#define FUZZ_GATE_MAX_SLO 16

static void check_roundtrip(const struct gate_expr *ex, bool want_probe)
{
	struct gate_expr again;
	char text[256], text2[256], err[256];

	gate_format(ex, text, sizeof(text));
	fuzz_check(gate_parse(text, want_probe, &again, err, sizeof(err)) == 0,
	           "gate_format output parses");
	gate_format(&again, text2, sizeof(text2));
	fuzz_check(strcmp(text, text2) == 0, "gate_format is canonical");
}

static void one(const char *s, bool want_probe)
{
	struct gate_expr ex;
	char err[256] = "";

	if (gate_parse(s, want_probe, &ex, err, sizeof(err)) == 0)
		check_roundtrip(&ex, want_probe);
	else
		fuzz_check(err[0] != '\0', "a refused gate has a reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_expr conds[FUZZ_GATE_MAX_SLO];
	char err[256] = "";
	char *s = fuzz_strdup(data, size);
	int n;

	if (!s)
		return 0;
	one(s, true);
	one(s, false);
	n = gate_parse_slo(s, conds, FUZZ_GATE_MAX_SLO, err, sizeof(err));
	if (n < 0)
		fuzz_check(n == -EINVAL && err[0] != '\0', "a refused SLO has a reason");
	else
		fuzz_check(n >= 1 && n <= FUZZ_GATE_MAX_SLO, "SLO condition count in range");
	for (int i = 0; i < n; i++)
		check_roundtrip(&conds[i], false);
	free(s);
	return 0;
}
