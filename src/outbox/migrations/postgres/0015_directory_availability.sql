-- The live directory (SQLite's 0015): which contact entries are marked
-- unavailable, shared by every daemon and kept across restarts, and the
-- log of every change. Times are Unix milliseconds.
CREATE TABLE directory_availability (
    entry        TEXT PRIMARY KEY,
    available    BIGINT NOT NULL,
    reason       TEXT,
    changed_by   TEXT NOT NULL,
    changed_at   BIGINT NOT NULL
);

CREATE TABLE directory_availability_log (
    id           BIGSERIAL PRIMARY KEY,
    entry        TEXT NOT NULL,
    available    BIGINT NOT NULL,
    reason       TEXT,
    changed_by   TEXT NOT NULL,
    changed_at   BIGINT NOT NULL
);
CREATE INDEX directory_availability_log_by_entry ON directory_availability_log (entry, id);
