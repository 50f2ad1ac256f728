-- Purging old idempotency keys by age scans this index instead of the table.
CREATE INDEX IF NOT EXISTS processed_events_created ON processed_events (created);
