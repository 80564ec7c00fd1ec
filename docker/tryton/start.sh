#!/bin/sh
# The demo Tryton's entry point: the database is made on first start, then served.
set -eu
: "${TRYTON_PASSWORD:?set TRYTON_PASSWORD: the password of Tryton's admin user}"
DATA=${TRYTON_DATA:-/data}
DATABASE=invsync
cat > "$DATA/trytond.conf" <<CONF
[database]
uri = sqlite://
path = $DATA
[web]
listen = ${TRYTON_LISTEN:-0.0.0.0:8000}
CONF
if [ ! -f "$DATA/.ready" ]; then
  rm -f "$DATA/$DATABASE.sqlite"
  touch "$DATA/$DATABASE.sqlite"
  (umask 077 && printf '%s' "$TRYTON_PASSWORD" > "$DATA/.password")
  # The empty line answers the administrator's e-mail prompt.
  echo | TRYTONPASSFILE="$DATA/.password" trytond-admin -c "$DATA/trytond.conf" \
    -d "$DATABASE" -u stock --activate-dependencies
  rm "$DATA/.password"
  # shellcheck disable=SC2086  # the lists are words on purpose
  python "$(dirname "$0")/setup_db.py" "$DATA/trytond.conf" "$DATABASE" \
    --stores ${TRYTON_STORES:-US-NYC-01} --products ${TRYTON_PRODUCTS:-}
  touch "$DATA/.ready"
fi
exec trytond -c "$DATA/trytond.conf" -d "$DATABASE"
