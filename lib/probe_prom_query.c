/* probe_prom_query: not implemented yet; the registry reports such a type as
 * "not implemented" at run time (see probe_ops_find). */
#include "probe.h"

const struct probe_ops probe_prom_query_ops = {
	.type = PROBE_PROM_QUERY,
};
