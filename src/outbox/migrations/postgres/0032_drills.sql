-- SQLite's 0032: a crisis may be a drill, set when it is declared, never
-- changed.
ALTER TABLE crises ADD COLUMN drill BOOLEAN NOT NULL DEFAULT FALSE;
