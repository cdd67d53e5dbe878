-- migrate: no-transaction
-- The ended loans whose accessories are still missing (the fleet page's « À surveiller », beside the open loans that
-- loans_one_open_per_tablet finds): a few among every loan ever made, so a partial index of those few only.
CREATE INDEX CONCURRENTLY IF NOT EXISTS loans_missing_accessories ON loans (expected_return_on)
    WHERE cardinality(missing_accessories) > 0;
