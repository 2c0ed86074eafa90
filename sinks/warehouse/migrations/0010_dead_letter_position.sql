-- Where each dead letter sits on hutong.dlq, so an operator can retry it (the exchange
-- monitor's Retry): the warehouse keeps no payload bytes by default, the topic does.
-- The sink fills both from the position it read the letter at (sinks/warehouse/sink.py);
-- letters written before this migration have NULL and cannot be retried from here.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS dlq_partition Nullable(Int32) COMMENT 'partition of the letter on hutong.dlq' AFTER payload;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS dlq_offset Nullable(Int64) COMMENT 'offset of the letter on hutong.dlq' AFTER dlq_partition;
