-- 0003_history: reserved for waivers, rejudgements and invalidation (issue 5).
SELECT 1;
