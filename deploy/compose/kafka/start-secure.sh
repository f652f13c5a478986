#!/usr/bin/env bash
# The secured broker of compose.secure.yaml on the apache/kafka image (its command, mounted
# read-only). It stands in for the image's /etc/kafka/docker/run, whose configure step requires
# KAFKA_SSL_KEYSTORE_FILENAME and key-store password files under /etc/kafka/secrets as soon as
# an advertised listener uses SSL (and points the key store there), while this broker reads
# unencrypted PEM files from /run/secrets (compose secrets), as the local stack's does.
#
# 1. server.properties from the KAFKA_* variables, by the image's own rule (KafkaDockerWrapper):
#    drop KAFKA_, lower case, "_" -> ".", "___" -> "-", "__" -> "_"; the JVM's variables
#    (KAFKA_OPTS, KAFKA_HEAP_OPTS, ...) are not properties.
# 2. On the first start only (no meta.properties in the log directory): format the storage with
#    CLUSTER_ID and the SCRAM-SHA-512 credential of `admin`, whose password is read from
#    /run/secrets/kafka-admin. `kafka-storage format --add-scram` takes it only as an argument,
#    so it is visible to `ps` inside this container for the seconds formatting takes, once.
#    The other users are set by the kafka-access one-shot, as admin.
# 3. exec the broker.
#
# `start-secure.sh --render-only FILE` does step 1 only (the unit tests run it).
set -euo pipefail

render() {
  local name key
  while IFS= read -r name; do
    case $name in
      KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | \
        KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_LOG4J_ROOT_LOGLEVEL | \
        KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL | KAFKA_JMX_HOSTNAME | KAFKA_JMX_PORT)
        continue ;;
    esac
    key=${name#KAFKA_}
    key=${key,,}
    key=${key//_/.}
    key=${key//.../-}
    key=${key//../_}
    printf '%s=%s\n' "$key" "${!name}"
  done < <(compgen -e | grep '^KAFKA_' | sort)
}

if [[ ${1-} == --render-only ]]; then
  render > "$2"
  exit 0
fi

config=/opt/kafka/config/server.properties
render > "$config"

log_dir=$(sed -n 's/^log\.dirs=//p' "$config" | cut -d, -f1)
if [[ -z $log_dir ]]; then
  echo "start-secure.sh: no KAFKA_LOG_DIRS" >&2
  exit 1
fi
if [[ ! -e $log_dir/meta.properties ]]; then
  echo "===> Formatting $log_dir (cluster $CLUSTER_ID) with the SCRAM credential of admin"
  admin_password=$(< /run/secrets/kafka-admin)
  /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" --config "$config" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$admin_password]"
  unset admin_password
fi

exec /opt/kafka/bin/kafka-server-start.sh "$config"
