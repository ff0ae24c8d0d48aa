-- A message rendered once for many readers; deliveries refer to it and the
-- reader's name and unsubscribe link are filled in when it is sent. Keeps a
-- million-reader outbox to small rows.
CREATE TABLE renditions (
    id               TEXT PRIMARY KEY,
    announcement_id  TEXT NOT NULL REFERENCES announcements (id),
    content          TEXT NOT NULL
);

ALTER TABLE deliveries ADD COLUMN rendition_id TEXT REFERENCES renditions (id);
ALTER TABLE deliveries ADD COLUMN recipient_name TEXT;
ALTER TABLE deliveries ADD COLUMN unsubscribe_url TEXT;

-- Per-subscriber deliveries are planned in batches after the transition;
-- an unfinished plan is resumed at start from `planned_through`.
ALTER TABLE announcements ADD COLUMN planning BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE announcements ADD COLUMN planned_through BIGINT NOT NULL DEFAULT 0;
ALTER TABLE announcements ADD COLUMN idempotency_scope TEXT;
ALTER TABLE announcements ADD COLUMN idempotency_key TEXT;

CREATE INDEX announcements_planning ON announcements (planning) WHERE planning;
CREATE INDEX deliveries_by_announcement ON deliveries (announcement_id);
-- Expired leases are found among the few rows in flight.
CREATE INDEX deliveries_in_flight ON deliveries (channel, lease_until) WHERE state = 'in_flight';

-- A retry checks whether its reader opted out meanwhile.
CREATE INDEX opt_outs_by_address ON opt_outs (address);
