/* fuzz-hist: hist_deserialize() on arbitrary bytes. Serialized histograms
 * are read back from the store to re-judge runs, so a damaged row must be
 * refused, never crash or allocate beyond the caps. The format is
 * canonical: whatever is accepted must serialize back to the same bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lib/loadgen/hist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hist *h = NULL;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int r;

	r = hist_deserialize(data, size, &h);
	if (r < 0) {
		fuzz_check(h == NULL, "no histogram on error");
		return 0;
	}
	/* Queries walk every bucket: they must hold on anything accepted. */
	(void)hist_percentile(h, 99.0);
	(void)hist_mean(h);
	fuzz_check(hist_count(h) <= HIST_COUNT_MAX, "count within its cap");
	if (hist_count(h) > 0)
		fuzz_check(hist_min(h) <= hist_max(h), "min <= max");
	if (hist_serialize(h, &out, &out_len) == 0) {
		fuzz_check(out_len == size && memcmp(out, data, size) == 0,
		           "accepted bytes are canonical (serialize gives them back)");
		free(out);
	}
	hist_free(h);
	return 0;
}
