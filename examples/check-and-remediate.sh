#!/usr/bin/env bash
# A scheduled job (cron, systemd timer, Task Scheduler via WSL): report drift, put it back,
# and leave a JSON report for monitoring. Never prompts: no terminal is attached.
set -u
params=${1:-/etc/psrunner/contoso-unattended.toml}
report_dir=${REPORT_DIR:-/var/log/psrunner}
mkdir -p "$report_dir"

psrunner check m365-backup-access --params-file "$params" --output json -q > "$report_dir/check.json"
case $? in
  0) echo "in place: nothing to do"; exit 0 ;;
  3) echo "drift found: remediating" ;;
  2) echo "bad input: see the message above" >&2; exit 2 ;;
  *) echo "check failed: see $report_dir/check.json" >&2; exit 1 ;;
esac

psrunner run m365-backup-access --params-file "$params" --yes --output json -q > "$report_dir/run.json"
code=$?
[ $code -eq 0 ] && echo "remediated" || echo "run failed with exit $code: see $report_dir/run.json" >&2
exit $code
