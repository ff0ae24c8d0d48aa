-- `[fatigue] max_per_reader_per_hour` counts each reader's recent
-- announcements when a plan batch is written (issue 16): by recipient id
-- and time, among the rows that have one (broadcasts have none).
CREATE INDEX deliveries_by_recipient ON deliveries (recipient_id, created_at)
    WHERE recipient_id IS NOT NULL;
