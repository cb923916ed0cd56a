/* probe_rollback_drill: not implemented yet; the registry reports such a type as
 * "not implemented" at run time (see probe_ops_find). */
#include "probe.h"

const struct probe_ops probe_rollback_drill_ops = {
	.type = PROBE_ROLLBACK_DRILL,
};
