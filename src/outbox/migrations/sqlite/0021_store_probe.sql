-- One row the health check rewrites: /readyz and the watchdog learn that
-- writes fail (a full disk, a held lock) as well as reads.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL
);
