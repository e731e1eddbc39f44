#!/usr/bin/env bash
# The README's curl walkthrough as a script, with a check after every step: import a small
# CSV file with one bad row (tagged with a campaign), poll the task and download its ERR
# file, then export the dataset (a task submitted as JSON), poll it and download its IO
# file; then the other two families: update the dataset by key through the bulk API and poll
# the job by its UUID, and ask for the campaign's import results. Exits non-zero at the
# first step that fails.
#
#   examples/walkthrough.sh                                   # against 127.0.0.1:8080
#   TASKBOX_URL=http://127.0.0.1:18080 examples/walkthrough.sh
#   TASKBOX_TOKEN=tbx_1_... TASKBOX_VDN=7 examples/walkthrough.sh   # with a token of client 7
#
# TASKBOX_TOKEN, when set, goes with every request as `Authorization: Bearer`; TASKBOX_VDN
# is the vdnId the import-result query names (the token's client, when it has a numeric
# name; any in the open mode).
#
# Needs bash, curl, grep, sed and coreutils. Running it twice against the same database
# works: the second import counts the three good rows as duplicates.
set -euo pipefail

BASE=${TASKBOX_URL:-http://127.0.0.1:8080}
VDN=${TASKBOX_VDN:-1}
AUTH=()
if [ -n "${TASKBOX_TOKEN:-}" ]; then
    AUTH=(-H "Authorization: Bearer $TASKBOX_TOKEN")
fi
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
    code=$(curl -sS -o "$WORK/body" -w '%{http_code}' ${AUTH[@]+"${AUTH[@]}"} "$@") || fail "curl $* could not reach $BASE"
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

step "Submit it as a raw body: csv.import into the dataset rates, key code, campaign spring"
request 202 -H 'Content-Type: text/csv' --data-binary @"$WORK/rates.csv" \
    "$BASE/webservicetasks?kind=csv.import&table=rates&key=code&filename=rates.csv&campaign=spring"
IMPORT_ID=$(field WebServiceTaskId)
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

# poll_job UUID: polls the api job until it has ended; leaves it in $WORK/body.
poll_job() {
    local job=$1 waited=0
    while :; do
        request 200 "$BASE/engine/api/api-jobs/$job"
        grep -Eq '"status":"(completed|failed)"' "$WORK/body" && return 0
        [ "$waited" -lt "$POLL_SECONDS" ] || fail "job $job did not end within $POLL_SECONDS s"
        sleep 1
        waited=$((waited + 1))
    done
}

# bulk QUERY RECORDS: posts the records as a dataset.update job; its UUID in $JOB.
bulk() {
    request 202 -H 'Content-Type: application/json' -d "$2" \
        "$BASE/engine/api/bulk/dataset.update?$1"
    cat "$WORK/body"; echo
    grep -q '"status":"pending"' "$WORK/body" || fail "the job is not pending: $(cat "$WORK/body")"
    JOB=$(sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p' "$WORK/body")
    [ -n "$JOB" ] || fail "no job id in $(cat "$WORK/body")"
}

# A code of this run's own, so that running the walkthrough again creates a row again.
NEW=N$(date +%s%N)

step "Bulk API: upsert FR as it is and a new row $NEW, as one job, then poll it"
bulk "table=rates&key=code&upsert=true" "[{\"code\":\"FR\",\"rate\":\"0.20\"},{\"code\":\"$NEW\",\"name\":\"Newland\",\"rate\":\"0.40\"}]"
poll_job "$JOB"
cat "$WORK/body"; echo
grep -q '"status":"completed"' "$WORK/body" || fail "the job did not complete"
grep -q '"total_records":2' "$WORK/body" || fail "the job did not count 2 records"
grep -q '"effected_records":1' "$WORK/body" || fail "the job did not change exactly one row (FR was up to date)"
grep -q '"message":""' "$WORK/body" || fail "the job has a message though nothing failed"

step "Bulk API: update a code that is not there"
bulk "table=rates&key=code" '[{"code":"XX","rate":"1"}]'
poll_job "$JOB"
cat "$WORK/body"; echo
grep -q '"status":"completed"' "$WORK/body" || fail "the job did not complete"
grep -q '"effected_records":0' "$WORK/body" || fail "the job changed a row"
grep -q 'code: XX failed: no such record' "$WORK/body" || fail "the job's message does not name XX"

step "Import results of campaign spring (vdnId $VDN)"
request 200 -H 'Content-Type: application/json' -d '{"offset":0,"limit":10}' \
    "$BASE/rest/isales/v1/openapi/campaigns/$VDN/calldatafile/queryDataImportTask/spring"
cat "$WORK/body"; echo
grep -q '"resultCode":"0200000"' "$WORK/body" || fail "the query did not succeed"
grep -q "\"id\":\"$IMPORT_ID\"" "$WORK/body" || fail "the query does not list import $IMPORT_ID"
grep -q '"failNum":1' "$WORK/body" || fail "the import's failed row is not counted"

printf '\nwalkthrough: OK\n'
