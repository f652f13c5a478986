"""The local stack: Kafka, a MongoDB-wire server, Prometheus and MLflow as plain processes."""
