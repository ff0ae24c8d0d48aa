-- Corrections go before every other message: they take priority 0, so
-- announcements (initial, updates, the all-clear) move to 1 and follow-ups
-- to 2. Lower goes first; the claim's hold-back rule compares priorities
-- only with each other, so it keeps its meaning.
UPDATE deliveries SET priority = priority + 1;
