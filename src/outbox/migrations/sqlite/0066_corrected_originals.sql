-- When a correction stopped an announcement. A delivery of it that was in
-- flight then (counted as sent, so the correction followed it) must not be
-- tried again if that attempt fails or its lease is given back: the
-- original would then reach the reader after its own correction.
ALTER TABLE announcements ADD COLUMN corrected_at INTEGER;
