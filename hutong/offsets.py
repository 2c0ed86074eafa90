"""Where a partition ends, on Kafka and on Tansu alike.

Kafka's ListOffsets (``get_watermark_offsets``, aiokafka's ``end_offsets``) answers
the offset after the last record. Tansu, the embedded broker, answers the base offset
of the last record batch plus one: short by the batch's other records whenever the
last produce carried more than one record to the partition. A fetch reports the true
end (its high watermark, and the end-of-partition event), so :func:`watermarks` asks
ListOffsets, then reads each partition from the offset before that to its end: on
Kafka one record, on Tansu the last batch.

Whatever reads a topic "to its end" (the registry and map feeds, replay, the
dead-letter reader, Faust's table recovery) asks here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

__all__ = ["watermarks"]

Partition = tuple[str, int]


def watermarks(client_config: Mapping[str, Any], partitions: Iterable[Partition],
               timeout: float = 15.0) -> dict[Partition, tuple[int, int]]:
    """(low, high) of each partition as Kafka means them: the first offset held, and the
    offset after the last record.

    Raises KafkaException when the broker does not answer within ``timeout``.
    """
    consumer = Consumer({**client_config, "group.id": f"hutong-ends-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "fetch.wait.max.ms": 50})
    try:
        ends: dict[Partition, int] = {}
        lows: dict[Partition, int] = {}
        starts = []
        for topic, partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout)
            lows[(topic, partition)], ends[(topic, partition)] = low, high
            if high > low:
                starts.append(TopicPartition(topic, partition, high - 1))
        pending = {(tp.topic, tp.partition) for tp in starts}
        if pending:
            consumer.assign(starts)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                                "reading to the end of the partitions"))
            for msg in consumer.consume(1000, 0.5):
                where = (msg.topic() or "", msg.partition() or 0)
                error = msg.error()
                if error is None:
                    ends[where] = max(ends[where], (msg.offset() or 0) + 1)
                elif error.code() == KafkaError._PARTITION_EOF:
                    ends[where] = max(ends[where], msg.offset() or 0)
                    pending.discard(where)
        return {where: (lows[where], end) for where, end in ends.items()}
    finally:
        consumer.close()
