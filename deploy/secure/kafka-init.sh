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
#  2. The broker's own logins: its inter-broker (BROKER) and controller (CONTROLLER)
#     listeners, on the broker container's loopback, are SASL_PLAINTEXT with PLAIN and one
#     internal super user `broker`, whose random password is written only to server.properties
#     and to internal-client.properties (0600, same volume: for the healthcheck and for
#     kafka-configs.sh/kafka-acls.sh run inside the broker container). With the authorizer on,
#     no listener lets an anonymous client in.
#  3. SASL: one SCRAM-SHA-512 user per principal: `admin` (super user: topics-secure,
#     kafka-secure-acls and the operator's tools), `worker` and `trainer` (only the ACLs of
#     fraudstream.stream.kafka_secure.role_acls, which deploy/secure/grant-acls.py creates once
#     the broker is up). KRaft keeps SCRAM credentials in its metadata log, so they are added
#     when the storage is formatted (kafka-storage.sh format --add-scram, KIP-900), before any
#     client could log in.
#
# Environment: FRAUDSTREAM_KAFKA_ADMIN_PASSWORD, FRAUDSTREAM_KAFKA_WORKER_PASSWORD,
# FRAUDSTREAM_KAFKA_TRAINER_PASSWORD (all required, checked at every run: compose passes an
# unset one as empty, because it cannot require them without stopping the plaintext stack
# too), CLUSTER_ID, KAFKA_CERT_SAN (keytool SAN list, e.g.
# dns:kafka-secure,dns:localhost,ip:127.0.0.1).
set -euo pipefail

# The image's paths; overridable so that tests/deploy can run this script outside Docker.
SECRETS=${KAFKA_INIT_SECRETS_DIR:-/etc/kafka/secrets}
CONFIG=${KAFKA_INIT_CONFIG_DIR:-/mnt/shared/config}
DATA=${KAFKA_INIT_DATA_DIR:-/var/lib/kafka/data}
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
KEYSTORE="$SECRETS/kafka.keystore.p12"
# The SCRAM principals; user U's password is in FRAUDSTREAM_KAFKA_<U>_PASSWORD.
USERS=(admin worker trainer)

die() { echo "kafka-init: $*" >&2; exit 1; }
password_var() { echo "FRAUDSTREAM_KAFKA_${1^^}_PASSWORD"; }

for user in "${USERS[@]}"; do
    var=$(password_var "$user")
    password="${!var:-}"
    [ -n "$password" ] || die "set $var (the SCRAM password of user $user, 12+ characters; in the environment or in .env next to docker-compose.yml)"
    [ "${#password}" -ge 12 ] || die "$var: use at least 12 characters"
    case "$password" in
        *[,\]\[\"\'\\\ =]*) die "$var must not contain , [ ] = quotes, backslashes or spaces" ;;
    esac
done
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

# Also added to a server.properties an older kafka-init.sh made (which had no authorizer).
if ! grep -q '^listener.name.broker.plain.sasl.jaas.config=' "$CONFIG/server.properties"; then
    echo "kafka-init: making the broker's internal PLAIN login (inter-broker and controller listeners)"
    INTERNAL=$(head -c 36 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"$INTERNAL\""
    cat >> "$CONFIG/server.properties" <<EOF
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.broker.sasl.enabled.mechanisms=PLAIN
listener.name.broker.plain.sasl.jaas.config=$jaas user_broker="$INTERNAL";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$jaas user_broker="$INTERNAL";
EOF
    cat > "$CONFIG/internal-client.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=$jaas;
EOF
fi

if [ ! -e "$DATA/meta.properties" ]; then
    echo "kafka-init: formatting $DATA with SCRAM-SHA-512 users ${USERS[*]}"
    # Only what formatting reads; the broker's full configuration comes from KAFKA_*.
    work=$(mktemp -d)
    cat > "$work/format.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:29093
controller.listener.names=CONTROLLER
listeners=BROKER://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093
listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=BROKER
log.dirs=$DATA
EOF
    scram=()
    for user in "${USERS[@]}"; do
        var=$(password_var "$user")
        scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=${!var}]")
    done
    "$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" -c "$work/format.properties" "${scram[@]}"
    rm -rf "$work"
else
    echo "kafka-init: $DATA is formatted already; SCRAM users are kept (add or change one with kafka-configs.sh, docs/security.md)"
fi
