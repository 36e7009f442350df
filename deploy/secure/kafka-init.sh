#!/usr/bin/env bash
# One-shot set-up of the `secure` compose profile's broker (docker-compose.yml, service
# kafka-secure-init), run in the apache/kafka image before kafka-secure starts. Idempotent:
# what exists already is kept.
#
#  1. TLS: a throwaway CA signs the broker's key (keytool, from the image's JRE). The CA's
#     private key never leaves this container's tmpfs; the broker's keystore (0600, owned by
#     the broker's user) and the public CA certificate ca.pem (0644, for the clients) go to
#     /etc/kafka/secrets (volume kafka-secure-secrets; the clients mount it read-only and can
#     read only ca.pem). The keystore password is random and written only to
#     /mnt/shared/config/server.properties (volume kafka-secure-config, broker only).
#  2. SASL: the SCRAM-SHA-512 user the fraudstream services log in as. KRaft keeps SCRAM
#     credentials in its metadata log, so they are added when the storage is formatted
#     (kafka-storage.sh format --add-scram, KIP-900), before any client could log in.
#
# Environment: FRAUDSTREAM_KAFKA_USER, FRAUDSTREAM_KAFKA_PASSWORD (required), CLUSTER_ID,
# KAFKA_CERT_SAN (keytool SAN list, e.g. dns:kafka-secure,dns:localhost,ip:127.0.0.1).
set -euo pipefail

# The image's paths; overridable so that tests/deploy can run this script outside Docker.
SECRETS=${KAFKA_INIT_SECRETS_DIR:-/etc/kafka/secrets}
CONFIG=${KAFKA_INIT_CONFIG_DIR:-/mnt/shared/config}
DATA=${KAFKA_INIT_DATA_DIR:-/var/lib/kafka/data}
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
KEYSTORE="$SECRETS/kafka.keystore.p12"
user="${FRAUDSTREAM_KAFKA_USER:-fraudstream}"
password="${FRAUDSTREAM_KAFKA_PASSWORD:-}"

die() { echo "kafka-init: $*" >&2; exit 1; }

[ -n "$password" ] || die "set FRAUDSTREAM_KAFKA_PASSWORD (the SCRAM password of user $user)"
[ "${#password}" -ge 12 ] || die "FRAUDSTREAM_KAFKA_PASSWORD: use at least 12 characters"
case "$password$user" in
    *[,\]\[\"\'\\\ =]*) die "FRAUDSTREAM_KAFKA_USER/PASSWORD must not contain , [ ] = quotes, backslashes or spaces" ;;
esac
[ -n "${CLUSTER_ID:-}" ] || die "CLUSTER_ID is not set"
umask 077

if [ ! -s "$KEYSTORE" ] || [ ! -s "$CONFIG/server.properties" ]; then
    echo "kafka-init: making a CA and the broker's certificate (SAN ${KAFKA_CERT_SAN})"
    work=$(mktemp -d)
    STOREPASS=$(head -c 36 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    CAPASS=$(head -c 36 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    export STOREPASS CAPASS
    rm -f "$KEYSTORE"
    keytool -genkeypair -alias ca -keyalg RSA -keysize 3072 -validity 825 \
        -dname "CN=fraudstream compose CA" -ext bc:c -ext ku:c=keyCertSign,cRLSign \
        -keystore "$work/ca.p12" -storetype PKCS12 -storepass:env CAPASS
    keytool -exportcert -rfc -alias ca -keystore "$work/ca.p12" -storepass:env CAPASS \
        -file "$work/ca.pem"
    keytool -genkeypair -alias kafka -keyalg RSA -keysize 3072 -validity 825 \
        -dname "CN=kafka-secure" -keystore "$KEYSTORE" -storetype PKCS12 -storepass:env STOREPASS
    keytool -certreq -alias kafka -keystore "$KEYSTORE" -storepass:env STOREPASS \
        -file "$work/kafka.csr"
    keytool -gencert -alias ca -keystore "$work/ca.p12" -storepass:env CAPASS -rfc \
        -infile "$work/kafka.csr" -outfile "$work/kafka.pem" -validity 825 \
        -ext "san=${KAFKA_CERT_SAN}" -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth
    keytool -importcert -noprompt -alias ca -file "$work/ca.pem" \
        -keystore "$KEYSTORE" -storepass:env STOREPASS
    keytool -importcert -alias kafka -file "$work/kafka.pem" \
        -keystore "$KEYSTORE" -storepass:env STOREPASS
    install -m 0644 "$work/ca.pem" "$SECRETS/ca.pem"
    # Appended to by the image's KafkaDockerWrapper with the KAFKA_* variables.
    cat > "$CONFIG/server.properties" <<EOF
ssl.keystore.type=PKCS12
ssl.keystore.location=$KEYSTORE
ssl.keystore.password=$STOREPASS
ssl.key.password=$STOREPASS
listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.external.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
    rm -rf "$work"  # the CA's key: a new certificate means a new CA (delete the volumes)
fi

if [ ! -e "$DATA/meta.properties" ]; then
    echo "kafka-init: formatting $DATA with SCRAM-SHA-512 user $user"
    # Only what formatting reads; the broker's full configuration comes from KAFKA_*.
    work=$(mktemp -d)
    cat > "$work/format.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:29093
controller.listener.names=CONTROLLER
listeners=BROKER://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093
listener.security.protocol.map=BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=BROKER
log.dirs=$DATA
EOF
    "$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" -c "$work/format.properties" \
        --add-scram "SCRAM-SHA-512=[name=$user,password=$password]"
    rm -rf "$work"
else
    echo "kafka-init: $DATA is formatted already; SCRAM users are kept (change a password with kafka-configs.sh, docs/operations.md)"
fi
