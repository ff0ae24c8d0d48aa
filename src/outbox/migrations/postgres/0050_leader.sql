-- The lead among daemons sharing the store (SQLite's 0050): one row, who
-- holds it, since which term, until when (Unix milliseconds).
CREATE TABLE leader (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    node          TEXT NOT NULL,
    term          BIGINT NOT NULL,
    elected_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
