-- Twin of the SQLite migration 0021: the one row a health check may
-- rewrite to learn that writes fail as well as reads.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at BIGINT NOT NULL
);
