-- 0007_trend_cover: covering indexes for GET /v1/services/{name}/trends
-- (docs/spec.md "Trends"). Times are ms since the Unix epoch (UTC), as in 0001.

-- metrics_trend gains run_id and value, so a trend with an environment
-- reads its points from the index alone (one runs lookup per point for
-- the verdict and version, no metrics row lookup).
DROP INDEX metrics_trend;
CREATE INDEX metrics_trend ON metrics (service, probe, metric, environment, ts, run_id, value);

-- A trend of every environment walks (service, probe, metric) in ts
-- order: the newest LIMIT points straight off the index instead of
-- sorting the whole series, and buckets from the same walk.
CREATE INDEX metrics_trend_any ON metrics (service, probe, metric, ts, run_id, value, environment);
