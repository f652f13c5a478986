"""The streaming pipeline: wire format, event assembly, Kafka topics, emitter, worker, sinks."""
