#!/usr/bin/env bash
# suites.sh SUITE... [-- SUITE...]... — run in the cgroup v2 guest (cwd: the project)
# by tests/test_cgroup2_guest.py through scripts/cgroup2-vm.sh, one boot for all.
# Each "--"-separated lane runs its suites in order; the lanes run at once.
#
# SUITE is one of
#   pytest                  the project's tests in $GUEST_PYTEST_FILES (PYRUNC_CGROUP2_GUEST=1:
#                           a cgroup2_host test that skips fails); junit XML in pytest.xml
#   bats:RUNTIME            runc's bats ($GUEST_BATS_FILES) through $GUEST_BATS_HARNESS
#   podman:RUNTIME          $GUEST_CLIENTS/podman.sh RUNTIME   (likewise containerd:, docker:)
# RUNTIME is "runc" or "pyrunc" (this project's .venv/bin/pyrunc).
#
# Each suite's output goes to $CGROUP2_VM_RESULTS/<suite>.log and "<status> <seconds>"
# to <suite>.status; the console shows one line per suite. A suite that fails does not
# stop the others.
set -uo pipefail
out=${CGROUP2_VM_RESULTS:?run me through scripts/cgroup2-vm.sh}

runtime_path() {
	case $1 in
	runc) command -v runc ;;
	pyrunc) echo "$PWD/.venv/bin/pyrunc" ;;
	*) echo "$1" ;;
	esac
}

run_suite() {
	local suite=$1 name=${1//:/-} start rc
	start=$(date +%s)
	echo "== $suite: started at $(cut -d' ' -f1 /proc/uptime)s of guest uptime"
	case $suite in
	pytest)
		# shellcheck disable=SC2086 # a list of test files
		PYRUNC_CGROUP2_GUEST=1 timeout -k 30 "${GUEST_PYTEST_TIMEOUT:-1800}" \
			.venv/bin/python -m pytest -p no:cacheprovider -ra -q \
			--junitxml="$out/pytest.xml" $GUEST_PYTEST_FILES >"$out/$name.log" 2>&1
		;;
	bats:*)
		# shellcheck disable=SC2086 # a list of bats files
		"$GUEST_BATS_HARNESS" "$(runtime_path "${suite#*:}")" $GUEST_BATS_FILES >"$out/$name.log" 2>&1
		rc=$?
		# The TAP logs (each failure's commands and output) live in the guest's
		# /tmp, which dies with it: keep them beside the summary.
		tap=$(sed -n 's/^# logs: *//p' "$out/$name.log")
		[ -n "$tap" ] && [ -d "$tap" ] && cp -r "$tap" "$out/$name-tap"
		(exit $rc)
		;;
	podman:* | containerd:* | docker:*)
		timeout -k 30 "${GUEST_CLIENT_TIMEOUT:-900}" setsid \
			"$GUEST_CLIENTS/${suite%%:*}.sh" "$(runtime_path "${suite#*:}")" >"$out/$name.log" 2>&1
		;;
	*)
		echo "unknown suite $suite" >"$out/$name.log"
		false
		;;
	esac
	rc=$?
	echo "$rc $(($(date +%s) - start))" >"$out/$name.status"
	echo "== $suite: exit $rc in $(($(date +%s) - start)) s: $(grep -v '^[[:space:]]*$' "$out/$name.log" | tail -1)"
}

# Lanes run side by side: a bats run or an engine scenario keeps about one of
# the guest's two CPUs busy, so two lanes halve the wall time under TCG. The
# engines share /run/containerd and image stores: keep them in one lane.
lanes=() lane=""
for arg in "$@"; do
	if [ "$arg" = "--" ]; then
		lanes+=("$lane") lane=""
	else
		lane+="$arg "
	fi
done
lanes+=("$lane")
for lane in "${lanes[@]}"; do
	(
		for suite in $lane; do
			run_suite "$suite"
		done
	) &
done
wait
