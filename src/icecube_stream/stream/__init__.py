"""The streaming pipeline: event assembly, Kafka topics, emitter, worker, sinks."""
