-- 0002_load: reserved for the load engine's histograms and timelines (issue 3).
SELECT 1;
