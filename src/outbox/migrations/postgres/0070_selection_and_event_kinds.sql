-- PostgreSQL's 0070, as SQLite's.
-- Who a crisis's announcements go to and on which channels, as JSON:
-- {"audience": {"locales": [...], "regions": [...]}, "channels": [...]};
-- '{}' (every crisis before this) is everyone on every channel. Kept per
-- version too, so the history shows who each transition was sent to.
ALTER TABLE crises ADD COLUMN selection TEXT NOT NULL DEFAULT '{}';
ALTER TABLE crisis_versions ADD COLUMN selection TEXT NOT NULL DEFAULT '{}';

-- What an audit entry records: declared, updated, resolved, corrected.
-- NULL for entries from before this column: their status says it (a
-- correction then read as its crisis's status).
ALTER TABLE crisis_events ADD COLUMN kind TEXT;
