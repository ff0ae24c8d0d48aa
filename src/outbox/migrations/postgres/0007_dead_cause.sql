-- Why a dead delivery died, as a word the store decides by (what may be
-- requeued); `last_error` keeps the reason for people. NULL unless dead.
ALTER TABLE deliveries ADD COLUMN dead_cause TEXT;

-- Dead rows written before this migration, by the rules the store used to
-- decide with: the reasons it wrote itself, then the shape of a delivery
-- written dead at planning (never tried, finished when created), then the
-- dispatcher's reason for running out of attempts; any other reason was a
-- provider's permanent refusal.
UPDATE deliveries SET dead_cause = CASE
        WHEN last_error = 'the recipient opted out' THEN 'opted_out'
        WHEN last_error = 'cancelled: the crisis was resolved' THEN 'cancelled'
        WHEN last_error LIKE 'channel `%` is not configured' THEN 'unroutable'
        WHEN attempts = 0 AND finished_at = created_at THEN 'unfit'
        WHEN last_error LIKE 'gave up after % attempts; last error: %' THEN 'attempts_exhausted'
        ELSE 'permanent'
    END
WHERE state = 'dead';
