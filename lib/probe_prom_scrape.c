/* probe_prom_scrape: not implemented yet; the registry reports such a type as
 * "not implemented" at run time (see probe_ops_find). */
#include "probe.h"

const struct probe_ops probe_prom_scrape_ops = {
	.type = PROBE_PROM_SCRAPE,
};
