#!/usr/bin/env bash
# The README's curl walkthrough as a script, with a check after every step: import a small
# CSV file with one bad row, poll the task and download its ERR file, then export the
# dataset (a task submitted as JSON), poll it and download its IO file. Exits non-zero at
# the first step that fails.
#
#   examples/walkthrough.sh                                   # against 127.0.0.1:8080
#   TASKBOX_URL=http://127.0.0.1:18080 examples/walkthrough.sh
#
# Needs bash, curl, grep, sed and coreutils. Running it twice against the same database
# works: the second import counts the three good rows as duplicates.
set -euo pipefail

BASE=${TASKBOX_URL:-http://127.0.0.1:8080}
# How long a task may take before the walkthrough gives up on it.
POLL_SECONDS=${POLL_SECONDS:-60}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'walkthrough: FAILED: %s\n' "$*" >&2; exit 1; }

# request EXPECTED_STATUS CURL_ARGS...: runs curl, leaves the body in $WORK/body, and fails
# unless the HTTP status is the expected one.
request() {
    local expected=$1 code
    shift
    code=$(curl -sS -o "$WORK/body" -w '%{http_code}' "$@") || fail "curl $* could not reach $BASE"
    if [ "$code" != "$expected" ]; then
        fail "curl $* answered $code, expected $expected: $(cat "$WORK/body")"
    fi
}

# field NAME: a number or string field of the task JSON in $WORK/body.
field() {
    sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p" "$WORK/body"
}

# wait_for_end ID: polls task ID until it has ended; leaves it in $WORK/body.
wait_for_end() {
    local id=$1 waited=0
    while :; do
        request 200 "$BASE/webservicetasks/$id"
        printf '  %s%% %s\n' "$(field PercentComplete)" "$(field Status)"
        if grep -Eq '"Status":"(SUCCESS|ERROR|CANCELED)"' "$WORK/body"; then
            return 0
        fi
        [ "$waited" -lt "$POLL_SECONDS" ] || fail "task $id did not end within $POLL_SECONDS s"
        sleep 1
        waited=$((waited + 1))
    done
}

# expect NAME VALUE: fails unless the task field NAME is VALUE.
expect() {
    local got
    got=$(field "$1")
    [ "$got" = "$2" ] || fail "$1 is '$got', expected '$2': $(cat "$WORK/body")"
}

step "Is taskbox at $BASE?"
request 200 "$BASE/webservicetasks?limit=1"
echo "  yes"

step "A CSV file whose fourth line has one field too many"
printf 'code,name,rate\nUS,United States,0.10\nFR,France,0.20\nDE,Germany,0.15,oops\nJP,Japan,0.30\n' > "$WORK/rates.csv"
cat "$WORK/rates.csv"

step "Submit it as a raw body: csv.import into the dataset rates, key code"
request 202 -H 'Content-Type: text/csv' --data-binary @"$WORK/rates.csv" \
    "$BASE/webservicetasks?kind=csv.import&table=rates&key=code&filename=rates.csv"
ID=$(field WebServiceTaskId)
[ -n "$ID" ] || fail "no task id in $(cat "$WORK/body")"
expect Status Pending
echo "  task $ID"

step "Poll task $ID until it ends"
wait_for_end "$ID"
cat "$WORK/body"; echo
expect Status ERROR
expect TotalRecords 4
expect FailedRecords 1
grep -q '"Message":"Some records were not imported: 1 of 4 failed.' "$WORK/body" \
    || fail "unexpected message: $(cat "$WORK/body")"
[ $(($(field SucceededRecords) + $(field DuplicateRecords))) -eq 3 ] \
    || fail "the three good rows are neither imported nor duplicates"

step "Download its ERR file"
request 200 "$BASE/webservicetasks/$ID/ErrorFile"
cat "$WORK/body"
grep -Fq 'DE,Germany,0.15,oops,"expected 3 fields, found 4"' "$WORK/body" || fail "the ERR file lacks the bad row"

step "Submit a csv.export of rates as JSON"
request 202 -H 'Content-Type: application/json' -d '{"kind":"csv.export","params":{"table":"rates"}}' \
    "$BASE/webservicetasks"
ID=$(field WebServiceTaskId)
[ -n "$ID" ] || fail "no task id in $(cat "$WORK/body")"
echo "  task $ID"

step "Poll task $ID until it ends"
wait_for_end "$ID"
cat "$WORK/body"; echo
expect Status SUCCESS
expect IoFileName rates.csv

step "Download its IO file"
request 200 "$BASE/webservicetasks/$ID/IoFile"
cat "$WORK/body"
tr -d '\r' < "$WORK/body" > "$WORK/export.csv"
for line in 'code,name,rate' 'US,United States,0.10' 'FR,France,0.20' 'JP,Japan,0.30'; do
    grep -Fxq "$line" "$WORK/export.csv" || fail "the export lacks the line '$line'"
done
[ "$(head -n 1 "$WORK/export.csv")" = 'code,name,rate' ] || fail "the export does not start with the header"
! grep -q '^DE,' "$WORK/export.csv" || fail "the export holds the rejected row"

printf '\nwalkthrough: OK\n'
