-- Contact points that asked not to be contacted: by one-click unsubscribe
-- (email) or by texting STOP (phone). They outlive audience reloads.
CREATE TABLE opt_outs (
    point         TEXT NOT NULL CHECK (point IN ('email', 'phone')),
    address       TEXT NOT NULL,
    source        TEXT NOT NULL,
    opted_out_at  BIGINT NOT NULL,
    PRIMARY KEY (point, address)
);
