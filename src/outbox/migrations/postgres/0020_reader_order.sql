-- Announcements of one crisis reach each reader in order, per channel
-- (SQLite's 0020): an announcement's ordinal within its crisis (1 for the
-- first), copied onto its deliveries, lets a claim hold back a delivery
-- while an earlier one to the same destination on the same channel is
-- unfinished. The all-clear goes only to destinations an earlier message
-- reached, unless configured otherwise (`reached_only`).
ALTER TABLE announcements ADD COLUMN ordinal BIGINT NOT NULL DEFAULT 0;
ALTER TABLE announcements ADD COLUMN reached_only BOOLEAN NOT NULL DEFAULT false;
UPDATE announcements SET ordinal = (
    SELECT COUNT(*) FROM announcements AS earlier
    WHERE earlier.crisis_id = announcements.crisis_id
      AND (earlier.created_at < announcements.created_at
           OR (earlier.created_at = announcements.created_at AND earlier.id <= announcements.id)));
-- Two daemons adding an announcement to one crisis at once cannot both
-- take the same place: the second insert fails and its transition is
-- tried again.
CREATE UNIQUE INDEX announcements_by_ordinal ON announcements (crisis_id, ordinal);

ALTER TABLE deliveries ADD COLUMN ordinal BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN reached_only BOOLEAN NOT NULL DEFAULT false;
UPDATE deliveries SET ordinal = (
    SELECT ordinal FROM announcements WHERE announcements.id = deliveries.announcement_id)
WHERE state IN ('pending', 'in_flight', 'retrying');
-- A reader's deliveries of a crisis on a channel, in announcement order.
CREATE INDEX deliveries_by_reader ON deliveries (crisis_id, channel, destination, ordinal);
-- The same, of the unfinished ones only: what a claim asks of every row it
-- considers (is an earlier message of this reader still to go?). Without
-- it PostgreSQL may answer from deliveries_by_crisis, reading every row of
-- the crisis for each row claimed (seen on a freshly loaded table, before
-- its first ANALYZE).
CREATE INDEX deliveries_unfinished_by_reader ON deliveries (crisis_id, channel, destination, ordinal)
    WHERE state IN ('pending', 'in_flight', 'retrying');
