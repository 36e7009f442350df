#!/bin/sh
# Entrypoint wrapper of the `secure` compose profile's fraudstream-image services
# (docker-compose.yml: topics-secure, kafka-secure-acls, worker-secure, trainer-secure).
#
#   sh require-password.sh VAR COMMAND [ARG...]
#
# VAR is the compose variable this service's SCRAM password comes from
# (FRAUDSTREAM_KAFKA_ADMIN_PASSWORD, _WORKER_ or _TRAINER_PASSWORD), passed on to the service
# as FRAUDSTREAM_SASL_PASSWORD. Compose cannot require it (`${VAR:?}` would stop the plaintext
# stack too: compose interpolates every profile), so an unset one arrives here empty: stop
# then, naming VAR, rather than let the service fail later on FRAUDSTREAM_SASL_PASSWORD, a
# name the operator never set. Otherwise run COMMAND (exec: same process, same signals).
set -eu

[ "$#" -ge 2 ] || { echo "require-password: usage: require-password.sh VAR COMMAND [ARG...]" >&2; exit 2; }
var=$1
shift
if [ -z "${FRAUDSTREAM_SASL_PASSWORD:-}" ]; then
    echo "require-password: set $var (the secure profile's Kafka SCRAM password of user" \
         "${FRAUDSTREAM_SASL_USERNAME:-?}, the same value kafka-secure-init made the user with;" \
         "in the environment or in .env next to docker-compose.yml)" >&2
    exit 2
fi
exec "$@"
