-- The lead among daemons sharing a store: one row, who holds it, since
-- which term, until when. Times are Unix milliseconds. A daemon alone on
-- its SQLite file takes it at start and keeps it.
CREATE TABLE leader (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    node          TEXT NOT NULL,
    term          INTEGER NOT NULL,
    elected_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
