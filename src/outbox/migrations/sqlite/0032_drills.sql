-- A crisis may be a drill: set when it is declared, never changed.
ALTER TABLE crises ADD COLUMN drill INTEGER NOT NULL DEFAULT 0;
