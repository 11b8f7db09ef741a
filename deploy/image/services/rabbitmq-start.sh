#!/bin/sh
# Start RabbitMQ with AMQP on $RABBITMQ_PORT (127.0.0.1 by default) and user $RABBITMQ_USER /
# $RABBITMQ_PASSWORD (made on the node's first start). Its Erlang distribution port and epmd port are
# set too (RABBITMQ_DIST_PORT, ERL_EPMD_PORT): on a host network the defaults (AMQP + 20000, 4369) are
# the host's own RabbitMQ's.
set -eu
[ -n "${RABBITMQ_PASSWORD:-}" ] || { echo "start: RABBITMQ_PASSWORD is not set" >&2; exit 2; }
umask 077
cat >/tmp/rabbitmq.conf <<CONF
listeners.tcp.default = ${LISTEN_ADDRESS:-127.0.0.1}:${RABBITMQ_PORT:-5672}
default_user = ${RABBITMQ_USER:-baton}
default_pass = ${RABBITMQ_PASSWORD}
loopback_users = none
CONF
export HOME=/var/lib/rabbitmq RABBITMQ_CONFIG_FILE=/tmp/rabbitmq RABBITMQ_MNESIA_BASE=/var/lib/rabbitmq/mnesia \
	RABBITMQ_LOG_BASE=/tmp RABBITMQ_LOGS=- RABBITMQ_NODENAME=${RABBITMQ_NODENAME:-fleet@localhost}
exec rabbitmq-server
