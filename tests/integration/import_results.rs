//! The import-result query (`POST /rest/isales/v1/openapi/campaigns/{vdnId}/calldatafile/
//! queryDataImportTask/{campaignId}`): a campaign's csv.import tasks, newest first, paged and
//! counted; its checks in the documented order, each with its code and the parameter it
//! names; and the status word of an import in every state.

use serde_json::{json, Value};

use crate::common::*;
use crate::lifecycle::{big_csv, hold_import_under_way};

/// The query's URL; `vdn` and `campaign` go into the path as given (encoded by the caller).
fn url(server: &Server, vdn: &str, campaign: &str) -> String {
    server.url(&format!(
        "/rest/isales/v1/openapi/campaigns/{vdn}/calldatafile/queryDataImportTask/{campaign}"
    ))
}

/// POSTs `body` (bytes, as sent) to the query's URL.
fn post(server: &Server, vdn: &str, campaign: &str, body: &[u8]) -> Answer {
    post_as(server, None, vdn, campaign, body)
}

/// [`post`] with `token`'s `Authorization` header, if given.
fn post_as(
    server: &Server,
    token: Option<&Token>,
    vdn: &str,
    campaign: &str,
    body: &[u8],
) -> Answer {
    let bearer = token.map(Token::bearer);
    let mut headers = vec![("Content-Type", "application/json; charset=UTF-8")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    send("POST", &url(server, vdn, campaign), &headers, Some(body))
}

/// The answer to a query the family accepts: 200, code 0200000 both ways.
fn results(server: &Server, vdn: &str, campaign: &str, body: Value) -> Value {
    accepted(&post(server, vdn, campaign, body.to_string().as_bytes()))
}

/// The answer's JSON, after checking that it is a success: 200, code 0200000 both ways.
fn accepted(answer: &Answer) -> Value {
    let json = answer.json();
    assert_eq!(answer.status, 200, "{json}");
    for (field, value) in [
        ("resultCode", "0200000"),
        ("returnCode", "0200000"),
        ("resultDesc", "success"),
        ("returnDesc", "success"),
    ] {
        assert_eq!(json[field], value, "{json}");
    }
    json
}

/// The ids of an answer's results, as numbers, and its count.
fn ids_and_count(answer: &Value) -> (Vec<i64>, u64) {
    let ids = answer["result"]
        .as_array()
        .expect("a result list")
        .iter()
        .map(|r| {
            r["id"]
                .as_str()
                .expect("an id string")
                .parse()
                .expect("digits")
        })
        .collect();
    (ids, answer["count"].as_u64().expect("a count"))
}

/// Submits a csv.import of `csv` into `table`, tagged with `campaign` if given.
fn import(server: &Server, table: &str, campaign: Option<&str>, csv: &[u8]) -> i64 {
    let campaign = campaign.map_or(String::new(), |c| format!("&campaign={c}"));
    let query = format!("kind=csv.import&table={table}&key=id&filename={table}.csv{campaign}");
    post_file(server, &query, csv).data(202)["WebServiceTaskId"]
        .as_i64()
        .expect("an id")
}

#[test]
fn a_campaign_s_imports_come_newest_first_paged_and_counted() {
    let server = Server::start();
    let mut mine = Vec::new();
    let mut others = Vec::new();
    for i in 0..25 {
        let csv = format!("id,name\n{i},row {i}\n");
        mine.push(import(
            &server,
            &format!("t{}", i % 4),
            Some("Spring%20Sale"),
            csv.as_bytes(),
        ));
        // Around them: another campaign, an untagged import, a task of another kind.
        others.push(match i % 5 {
            0 => import(&server, "other", Some("Autumn"), csv.as_bytes()),
            1 => import(&server, "other", None, csv.as_bytes()),
            2 => submit(&server, "sleep", json!({"seconds": 0})),
            _ => continue,
        });
    }
    mine.reverse();
    let page = |offset: u64, limit: u64| {
        let body = json!({"offset": offset, "limit": limit});
        ids_and_count(&results(&server, "1", "Spring%20Sale", body))
    };
    assert_eq!(page(0, 10), (mine[..10].to_vec(), 25));
    assert_eq!(page(10, 10), (mine[10..20].to_vec(), 25));
    assert_eq!(page(20, 10), (mine[20..].to_vec(), 25));
    assert_eq!(page(25, 10), (vec![], 25));
    assert_eq!(page(0, 100), (mine.clone(), 25));
    // The campaign is matched exactly; another is counted on its own.
    let count = |campaign| {
        ids_and_count(&results(
            &server,
            "1",
            campaign,
            json!({"offset": 0, "limit": 1}),
        ))
        .1
    };
    assert_eq!(count("Autumn"), 5);
    assert_eq!(count("spring%20sale"), 0);
    assert_eq!(count("Spring"), 0);
    // Without tokens, every vdnId reads the one client's imports.
    let other_vdn = results(
        &server,
        "9999",
        "Spring%20Sale",
        json!({"offset": 0, "limit": 5}),
    );
    assert_eq!(ids_and_count(&other_vdn), (mine[..5].to_vec(), 25));

    // Only the tasks named: the campaign's among them, newest first, counted.
    let named = |offset: u64, limit: u64| {
        let body = json!({
            "offset": offset,
            "limit": limit,
            "importTaskIds": [
                mine[20].to_string(), mine[3].to_string(), others[0].to_string(),
                others[2].to_string(), mine[11].to_string(), "999999",
                "164698362894300182038011895728",
            ],
        });
        ids_and_count(&results(&server, "1", "Spring%20Sale", body))
    };
    assert_eq!(named(0, 10), (vec![mine[3], mine[11], mine[20]], 3));
    assert_eq!(named(1, 1), (vec![mine[11]], 3));
    // An empty list is no filter.
    let all = results(
        &server,
        "1",
        "Spring%20Sale",
        json!({"offset": 0, "limit": 1, "importTaskIds": []}),
    );
    assert_eq!(ids_and_count(&all), (vec![mine[0]], 25));
}

/// Checks a refusal: 200, no result, `code` both ways, a description naming `named`.
fn assert_refused(answer: &Answer, code: &str, named: &str) {
    let json = answer.json();
    assert_eq!(answer.status, 200, "{json}");
    assert_eq!(
        (&json["resultCode"], &json["returnCode"]),
        (&json!(code), &json!(code)),
        "{json}"
    );
    assert_eq!(
        (&json["result"], &json["count"]),
        (&json!([]), &json!(0)),
        "{json}"
    );
    let desc = json["resultDesc"].as_str().expect("a description");
    assert_eq!(json["returnDesc"], desc, "{json}");
    assert!(desc.contains(named), "{desc:?} does not name {named:?}");
}

#[test]
fn each_fault_is_refused_with_its_code_naming_the_parameter_the_first_one_first() {
    let server = Server::start_with(&["--max-json", "1024", "--max-import-task-ids", "3"]);
    // The path, vdnId first: (vdnId, campaignId, code, the parameter named).
    let long = "c".repeat(65);
    let paths = [
        ("", "c", "02000001", "vdnId"),
        ("abc", "c", "02000006", "vdnId"),
        ("1.5", "c", "02000006", "vdnId"),
        ("0", "c", "02000007", "vdnId"),
        ("10000", "c", "02000007", "vdnId"),
        ("-3", "c", "02000007", "vdnId"),
        ("1", "", "02000001", "campaignId"),
        ("1", "%20", "02000001", "campaignId"),
        ("1", &long, "02000007", "campaignId"),
    ];
    for (vdn, campaign, code, named) in paths {
        let answer = post(&server, vdn, campaign, br#"{"offset": 0, "limit": 10}"#);
        assert_refused(&answer, code, named);
    }
    // Then the body: (body, code, the parameter named).
    let bodies: [(&[u8], &str, &str); 15] = [
        (b"", "02000008", "body"),
        (b"{\"offset\": 0,", "02000008", "body"),
        (b"[0, 10]", "02000008", "body"),
        (br#"{"limit": 10}"#, "02000001", "offset"),
        (br#"{"offset": "0", "limit": 10}"#, "02000006", "offset"),
        (br#"{"offset": -1, "limit": 10}"#, "02000007", "offset"),
        (br#"{"offset": 0, "limit": null}"#, "02000001", "limit"),
        (br#"{"offset": 0, "limit": 10.5}"#, "02000006", "limit"),
        (br#"{"offset": 0, "limit": 0}"#, "02000007", "limit"),
        (br#"{"offset": 0, "limit": 101}"#, "02000007", "limit"),
        (
            br#"{"offset": 0, "limit": 1, "importTaskIds": "5"}"#,
            "02000006",
            "importTaskIds",
        ),
        (
            br#"{"offset": 0, "limit": 1, "importTaskIds": ["1", 2]}"#,
            "02000006",
            "importTaskIds",
        ),
        (
            br#"{"offset": 0, "limit": 1, "importTaskIds": ["1", "2", "3", "4"]}"#,
            "02000007",
            "--max-import-task-ids",
        ),
        (
            br#"{"offset": 0, "limit": 1, "importTaskIds": ["12a"]}"#,
            "0200001",
            "importTaskIds",
        ),
        (
            br#"{"offset": 0, "limit": 1, "offest": 2}"#,
            "0200001",
            "offest",
        ),
    ];
    for (body, code, named) in bodies {
        assert_refused(&post(&server, "1", "c", body), code, named);
    }
    // Wrong in two ways: the first in the order is the one reported.
    let twice: [(&str, &str, &[u8], &str, &str); 5] = [
        ("0", "", b"{", "02000007", "vdnId"),
        ("x", "c", b"", "02000006", "vdnId"),
        ("1", "", b"[]", "02000001", "campaignId"),
        (
            "1",
            "c",
            br#"{"offset": -1, "limit": 0}"#,
            "02000007",
            "offset",
        ),
        (
            "1",
            "c",
            br#"{"limit": 0, "importTaskIds": 1}"#,
            "02000001",
            "offset",
        ),
    ];
    for (vdn, campaign, body, code, named) in twice {
        assert_refused(&post(&server, vdn, campaign, body), code, named);
    }

    // The HTTP core's errors keep their status, in the family's answer.
    let big = format!(
        r#"{{"offset": 0, "limit": 1, "pad": "{}"}}"#,
        "x".repeat(2000)
    );
    let answer = post(&server, "1", "c", big.as_bytes());
    let json = answer.json();
    assert_eq!(
        (answer.status, &json["resultCode"]),
        (413, &json!("0200413")),
        "{json}"
    );
    assert!(
        json["resultDesc"].as_str().unwrap().contains("--max-json"),
        "{json}"
    );
    let answer = send("GET", &url(&server, "1", "c"), &[], None);
    let json = answer.json();
    assert_eq!(
        (answer.status, answer.header("Allow")),
        (405, Some("POST")),
        "{json}"
    );
    assert_eq!(
        (&json["returnCode"], &json["result"]),
        (&json!("0200405"), &json!([]))
    );
}

#[test]
fn the_campaign_param_and_the_task_ids_bound_are_checked_where_they_are_set() {
    let server = Server::start();
    for (campaign, named) in [
        ("c".repeat(65), "campaign"),
        ("%20".to_string(), "campaign"),
    ] {
        let query = format!("kind=csv.import&table=t&campaign={campaign}");
        let message = post_file(&server, &query, b"id\n1\n").error(400);
        assert!(message.contains(named), "{message}");
    }
    let longest = "c".repeat(64);
    let id = import(&server, "t", Some(&longest), b"id\n1\n");
    let answer = results(&server, "1", &longest, json!({"offset": 0, "limit": 1}));
    assert_eq!(ids_and_count(&answer), (vec![id], 1));

    let (status, stderr) = Server::builder()
        .args(&["--max-import-task-ids", "0"])
        .run_to_exit(DEADLINE);
    assert!(!status.success());
    assert!(stderr.contains("max-import-task-ids"), "{stderr}");
}

/// The one result of `id` in campaign `s`.
fn result_of(server: &Server, id: i64) -> Value {
    let body = json!({"offset": 0, "limit": 1, "importTaskIds": [id.to_string()]});
    let answer = results(server, "1", "s", body);
    assert_eq!(ids_and_count(&answer), (vec![id], 1), "{answer}");
    answer["result"][0].clone()
}

/// `2022-03-11T07:27:09.000+00:00`.
fn is_time(value: &Value) -> bool {
    let text = value.as_str().unwrap_or_default();
    let Some(seconds) = text.strip_suffix(".000+00:00") else {
        return false;
    };
    seconds.len() == 19
        && seconds.bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn an_import_in_each_state_has_its_status_word() {
    let server = Server::start_with(&["--workers", "2"]);
    // Ended: imported, imported with failed rows, imported as duplicates, failed.
    let clean = import(&server, "a", Some("s"), b"id,name\n1,x\n2,y\n");
    // Ended before the next import into its dataset starts, which then finds its rows.
    wait_finished(&server, clean);
    let some_failed = import(&server, "b", Some("s"), b"id,name\n1,x\n2,y,extra\n3,z\n");
    let duplicates = import(&server, "a", Some("s"), b"id,name\n1,x\n3,z\n");
    let failed = import(&server, "c", Some("s"), b"\n\n");
    for id in [some_failed, duplicates, failed] {
        wait_finished(&server, id);
    }
    let expect = |id, status: &str, counts: [u64; 3], err: &str| {
        let result = result_of(&server, id);
        assert_eq!(result["id"], id.to_string(), "{result}");
        assert_eq!(result["status"], status, "{result}");
        let got = ["succNum", "repeatNum", "failNum"].map(|f| result[f].as_u64().unwrap());
        assert_eq!(got, counts, "{result}");
        assert_eq!(result["errMsg"], err, "{result}");
        assert!(
            is_time(&result["beginTime"]) && is_time(&result["endTime"]),
            "{result}"
        );
    };
    expect(clean, "2", [2, 0, 0], "");
    expect(some_failed, "2", [2, 0, 1], "");
    expect(duplicates, "2", [1, 1, 0], "");
    expect(
        failed,
        "3",
        [0, 0, 0],
        "The file has no header row: nothing was imported.",
    );

    // Running and waiting: an import holds dataset "held" and one worker; an import into
    // the same dataset waits for it, running, on the other; the next waits for a worker.
    let release = server.dir.join("release");
    let query = format!("table=held&filename=held.csv&release={}", release.display());
    let holder = hold_import_under_way(&server, &big_csv(10_000), &query);
    let running = import(&server, "held", Some("s"), b"id,name,amount\n10001,x,1\n");
    let result = wait_until("the import to run", || {
        let result = result_of(&server, running);
        (result["status"] == "1").then_some(result)
    });
    assert!(is_time(&result["beginTime"]), "{result}");
    assert_eq!(
        (&result["endTime"], &result["errMsg"]),
        (&json!(""), &json!("")),
        "{result}"
    );
    let waiting = import(&server, "other", Some("s"), b"id\n1\n");
    let result = result_of(&server, waiting);
    assert_eq!(result["status"], "0", "{result}");
    assert_eq!(
        (&result["beginTime"], &result["endTime"]),
        (&json!(""), &json!(""))
    );
    std::fs::write(&release, b"").expect("release the holding import");
    for id in [holder, running, waiting] {
        wait_finished(&server, id);
    }
    expect(running, "2", [1, 0, 0], "");
    expect(waiting, "2", [1, 0, 0], "");

    // Cancelled: a DELETE cancels a running task and then removes it, so no route leaves a
    // cancelled import to ask about; the worker's end of one is written behind the server.
    let conn = rusqlite::Connection::open(server.db_path()).expect("open the database");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let changed = conn
        .execute(
            "UPDATE tasks SET state = 7 /* canceled */, message = 'Canceled by request.', \
             total_records = 0, succeeded_records = 0 WHERE id = ?1",
            [clean],
        )
        .expect("mark the import cancelled");
    assert_eq!(changed, 1);
    expect(clean, "3", [0, 0, 0], "Canceled by request.");
}

/// Submits a csv.import with `token` into campaign `spring`; its id.
fn import_as(server: &Server, token: &Token) -> i64 {
    let bearer = token.bearer();
    let answer = send(
        "POST",
        &server.url("/webservicetasks?kind=csv.import&table=t&campaign=spring&filename=t.csv"),
        &[("Authorization", &bearer), ("Content-Type", "text/csv")],
        Some(b"id\n1\n"),
    );
    answer.data(202)["WebServiceTaskId"]
        .as_i64()
        .expect("an id")
}

#[test]
fn another_client_s_campaign_answers_as_a_campaign_without_imports() {
    let server = Server::start();
    // Contact-centre tenants are named by their vdnId.
    let (a, b) = (
        create_token(&server, 1, "Ann", "12"),
        create_token(&server, 2, "Ben", "34"),
    );
    let admin = create_admin_token(&server, 9, "ops");
    let (a_import, b_import) = (import_as(&server, &a), import_as(&server, &b));
    let page = br#"{"offset": 0, "limit": 10}"#;
    let ask = |token: &Token, vdn: &str, campaign: &str| {
        post_as(&server, Some(token), vdn, campaign, page)
    };
    let ids = |answer: &Answer| ids_and_count(&accepted(answer));
    assert_eq!(ids(&ask(&a, "12", "spring")), (vec![a_import], 1));
    assert_eq!(ids(&ask(&b, "34", "spring")), (vec![b_import], 1));

    // Ann asking for Ben's client gets, byte for byte, what a campaign without imports
    // gets; naming Ben's task in her own client finds nothing either.
    let foreign = ask(&a, "34", "spring");
    let empty = ask(&a, "12", "nothing");
    assert_eq!(
        (foreign.status, foreign.text()),
        (empty.status, empty.text())
    );
    assert_eq!(ids(&foreign), (vec![], 0));
    let named = format!(r#"{{"offset": 0, "limit": 10, "importTaskIds": ["{b_import}"]}}"#);
    let answer = post_as(&server, Some(&a), "12", "spring", named.as_bytes());
    assert_eq!(ids(&answer), (vec![], 0));

    // An administrator reads any client's by its vdnId.
    assert_eq!(ids(&ask(&admin, "34", "spring")), (vec![b_import], 1));
    assert_eq!(ids(&ask(&admin, "12", "spring")), (vec![a_import], 1));
    assert_eq!(ids(&ask(&admin, "56", "spring")), (vec![], 0));
    // Acting for one client, it is that client's view.
    let bearer = admin.bearer();
    let acting = send(
        "POST",
        &url(&server, "34", "spring"),
        &[("Authorization", &bearer), ("X-Taskbox-Client", "12")],
        Some(page),
    );
    assert_eq!(ids(&acting), (vec![], 0));

    // Without a valid token: 401, in the family's answer.
    let answer = post(&server, "12", "spring", page);
    let json = answer.json();
    assert_eq!(answer.status, 401, "{json}");
    assert_eq!(answer.header("WWW-Authenticate"), Some("Bearer"));
    assert_eq!(
        (&json["resultCode"], &json["result"]),
        (&json!("0200401"), &json!([]))
    );
}
