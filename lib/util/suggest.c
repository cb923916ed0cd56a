/* suggest: "did you mean" by edit distance (see suggest.h). */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/util/suggest.h"

#define SUGGEST_MAX_WORD 64

/* Optimal-string-alignment distance, case-insensitive: a swap of two
 * neighbours ("rtae") counts as one edit. Long words are not compared. */
static int edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int d[SUGGEST_MAX_WORD + 2][SUGGEST_MAX_WORD + 2];

	if (la > SUGGEST_MAX_WORD || lb > SUGGEST_MAX_WORD)
		return INT_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int cost = tolower((unsigned char)a[i - 1]) !=
			           tolower((unsigned char)b[j - 1]);
			int best = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

void rd_suggest_try(struct rd_suggest *sg, const char *cand)
{
	int d = edit_distance(sg->word, cand);
	int limit = strlen(sg->word) > 4 ? 2 : 1;

	if (d <= limit && (!sg->best || d < sg->best_d)) {
		sg->best = cand;
		sg->best_d = d;
	}
}

void rd_suggest_text(const struct rd_suggest *sg, char *buf, size_t len)
{
	if (sg->best)
		snprintf(buf, len, " (did you mean '%s'?)", sg->best);
	else
		buf[0] = '\0';
}
