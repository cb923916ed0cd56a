/* probe_rate_limit: not implemented yet; the registry reports such a type as
 * "not implemented" at run time (see probe_ops_find). */
#include "probe.h"

const struct probe_ops probe_rate_limit_ops = {
	.type = PROBE_RATE_LIMIT,
};
