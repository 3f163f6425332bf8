#!/usr/bin/env bash
# Entry point of the gateway and worker images: refuse to start while a variable still holds the placeholder
# that infra/env/prod.env ships for secrets (CHANGE_ME), then run the command.
set -euo pipefail

placeholder="${VOICEREEL_PLACEHOLDER:-CHANGE_ME}"
unset_names=()
for name in $(compgen -e); do
  [ "$name" = VOICEREEL_PLACEHOLDER ] && continue
  case "${!name}" in
    *"$placeholder"*) unset_names+=("$name") ;;
  esac
done
if [ "${#unset_names[@]}" -gt 0 ]; then
  echo "voicereel: refusing to start: ${unset_names[*]} still hold the placeholder '$placeholder';" \
       "set real values (from your secret store) before starting." >&2
  exit 78  # EX_CONFIG
fi
exec "$@"
