#!/bin/sh
# Render alertmanager.yml with the Telegram bot token and chat id from the environment, then optionally run
# Alertmanager on the result:
#
#   render.sh IN OUT [-- alertmanager ARGS...]
#
# The token comes from TELEGRAM_BOT_TOKEN, or from the file named by TELEGRAM_BOT_TOKEN_FILE; the chat id from
# TELEGRAM_CHAT_ID. OUT is written 0600 (it holds the token) with IN's templates/ next to it. Without a valid
# token and chat id the placeholders stay: Alertmanager starts, the Telegram receivers fail (its log says so)
# and the webhook keeps working. POSIX sh (busybox in the Alertmanager image, dash on Debian).
set -eu
if [ $# -lt 2 ]; then
  echo "usage: render.sh IN OUT [-- alertmanager ARGS...]" >&2
  exit 2
fi
in=$1
out=$2
shift 2
token=${TELEGRAM_BOT_TOKEN:-}
if [ -z "$token" ] && [ -n "${TELEGRAM_BOT_TOKEN_FILE:-}" ]; then
  token=$(cat "$TELEGRAM_BOT_TOKEN_FILE")
fi
chat=${TELEGRAM_CHAT_ID:-}
ok=1
case $token in
  ''|*[!0-9A-Za-z:_-]*|*:*:*) ok=0 ;;
  [0-9]*:?*) ;;
  *) ok=0 ;;
esac
case $chat in
  ''|-|*[!0-9-]*|?*-*) ok=0 ;;
esac
umask 077
mkdir -p "$(dirname "$out")"
if [ "$ok" = 1 ]; then
  sed -e "s|TELEGRAM_BOT_TOKEN_PLACEHOLDER|$token|g" -e "s|chat_id: -1001234567890|chat_id: $chat|g" "$in" > "$out.tmp"
else
  echo "render.sh: no valid TELEGRAM_BOT_TOKEN(_FILE) and TELEGRAM_CHAT_ID: the Telegram receivers will fail" >&2
  cp "$in" "$out.tmp"
fi
mv "$out.tmp" "$out"
if [ -d "$(dirname "$in")/templates" ]; then
  rm -rf "$(dirname "$out")/templates"
  cp -R "$(dirname "$in")/templates" "$(dirname "$out")/templates"
fi
if [ "${1:-}" = "--" ]; then
  shift
  exec "$@"
fi
