-- Follow-ups: computed and stored when a crisis is declared (or its kind,
-- and so its plan, changes, or it is resolved), each sent at most once.
CREATE TABLE follow_ups (
    id               TEXT PRIMARY KEY,
    -- Insertion order, which SQLite keeps as its rowid: follow-ups due at
    -- the same time are listed and fired in the order they were planned.
    seq              BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    crisis_id        TEXT NOT NULL REFERENCES crises (id),
    occurrence       BIGINT NOT NULL,
    phase            TEXT NOT NULL CHECK (phase IN ('active', 'after_resolution')),
    -- What it sends, to whom, where (JSON).
    spec             TEXT NOT NULL,
    due_at           BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'cancelled', 'skipped')),
    reason           TEXT,
    announcement_id  TEXT REFERENCES announcements (id),
    created_at       BIGINT NOT NULL,
    settled_at       BIGINT
);
CREATE INDEX follow_ups_due ON follow_ups (due_at) WHERE state = 'pending';
CREATE INDEX follow_ups_by_crisis ON follow_ups (crisis_id, due_at);

-- A follow-up announcement keeps its step (topic, channels, audience), so a
-- plan resumed after a restart renders and filters it the same way.
ALTER TABLE announcements ADD COLUMN follow_up TEXT;
