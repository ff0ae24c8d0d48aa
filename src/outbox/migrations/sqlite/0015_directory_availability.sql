-- The live directory: which contact entries are marked unavailable (by a
-- person or by their health probe), shared by every daemon on the store
-- and kept across restarts; an entry with no row is available. The log
-- keeps every change, who made it and when. Times are Unix milliseconds.
CREATE TABLE directory_availability (
    entry        TEXT PRIMARY KEY,
    available    INTEGER NOT NULL,
    reason       TEXT,
    changed_by   TEXT NOT NULL,
    changed_at   INTEGER NOT NULL
);

CREATE TABLE directory_availability_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    entry        TEXT NOT NULL,
    available    INTEGER NOT NULL,
    reason       TEXT,
    changed_by   TEXT NOT NULL,
    changed_at   INTEGER NOT NULL
);
CREATE INDEX directory_availability_log_by_entry ON directory_availability_log (entry, id);
