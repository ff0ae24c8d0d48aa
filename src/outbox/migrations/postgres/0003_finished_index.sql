-- Finished deliveries by state and time: the delivery rate counts sent and
-- dead ones of the last seconds, and the dead list reads newest first.
CREATE INDEX deliveries_finished ON deliveries (state, finished_at);
