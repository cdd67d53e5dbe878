-- migrate: no-transaction
-- A tablet's loans, whichever ended: its loan history (newest first), since when it is back in hand (the earliest a
-- wipe may be dated), and the receipt's "next loan of this tablet". loans_one_open_per_tablet holds open loans only,
-- and loans only grow: without this, each of these read every loan the fleet ever made.
CREATE INDEX CONCURRENTLY IF NOT EXISTS loans_by_tablet ON loans (tablet_id, loaned_at);
