#!/usr/bin/env bash
# One command from a fresh machine to a running site: installs what is missing, starts the
# engine and the registry, builds the site, publishes the starter catalogue, serves 127.0.0.1:3000.
# Idempotent: a second run reuses everything.
source "$(dirname "$0")/lib.sh"
T0=$(date +%s)
ensure_platform
export TRYTHIS_PROFILE=release   # what users run: the optimised server
# New maintainers' projects stay unlisted until an admin approves one (the admin page's review list).
export TRYTHIS_MODERATION="${TRYTHIS_MODERATION:-on}"
build_site
step "Database migrations"
target/release/trythis migrate && ok "database ready (${TRYTHIS_DATABASE_URL:-sqlite in $DATA})"
step "Admin account (the first admin; its password is printed once and kept in $DATA/admin-password)"
target/release/trythis admin --first "${TRYTHIS_ADMIN_EMAIL:-admin@trythis.local}"
step "Mail (sign-up, password reset and notice links)"
if [ -n "${TRYTHIS_SMTP_URL:-}" ]; then ok "through ${TRYTHIS_SMTP_URL##*@}"
else ok "no TRYTHIS_SMTP_URL: mails are written to ${TRYTHIS_MAIL_DIR:-$DATA/mail}/<address>/*.eml"; fi
step "Starter catalogue (catalog/: built and pushed on first start, reused later)"
target/release/trythis seed catalog
step "Ready after $(( $(date +%s) - T0 )) s — serving (Ctrl-C stops)"
exec target/release/trythis serve
