#!/usr/bin/env bash
# A scheduled job (cron, a systemd timer, Task Scheduler via WSL): is everything in place? If
# not, put it back; leave JSON reports for monitoring. Never prompts: no terminal is attached.
#   check-and-remediate.sh PARAMS_FILE [--secrets-from-credentials]
# With --secrets-from-credentials, each file in systemd's $CREDENTIALS_DIRECTORY is the secret
# parameter of its name (LoadCredential=graph_client_secret:...): see systemd/.
# Exit codes, as psrunner's own: 0 in place, 4 in place but a person must act (listed in the
# report), 1 failed, 2 bad input; after a remediating run, that run's code.
set -u
params=${1:-/etc/psrunner/contoso-unattended.toml}
report_dir=${REPORT_DIR:-/var/log/psrunner}
mkdir -p "$report_dir"
secrets=()
if [ "${2:-}" = "--secrets-from-credentials" ] && [ -d "${CREDENTIALS_DIRECTORY:-}" ]; then
  for f in "$CREDENTIALS_DIRECTORY"/*; do
    secrets+=(--secret-file "$(basename "$f")=$f")
  done
fi

psrunner check m365-backup-access --params-file "$params" ${secrets[@]+"${secrets[@]}"} --output json -q \
  > "$report_dir/check.json"
code=$?
case $code in
  0) echo "in place: nothing to do"; exit 0 ;;
  4) echo "in place; a person must act: see $report_dir/check.json"; exit 4 ;;
  3) echo "drift found: remediating" ;;
  2) echo "bad input: see $report_dir/check.json" >&2; exit 2 ;;
  *) echo "check failed with exit $code: see $report_dir/check.json" >&2; exit 1 ;;
esac

psrunner run m365-backup-access --params-file "$params" ${secrets[@]+"${secrets[@]}"} --yes --output json -q \
  > "$report_dir/run.json"
code=$?
case $code in
  0) echo "remediated" ;;
  4) echo "remediated; a person must act: see $report_dir/run.json" ;;
  *) echo "run failed with exit $code: see $report_dir/run.json" >&2 ;;
esac
exit $code
