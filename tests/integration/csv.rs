//! csv.import and csv.export as the contract describes them: counting, duplicates, failed
//! rows and the ERR file, header rules, RFC 4180 edge cases (checked byte for byte through
//! an export), and the export's format, column subsets and formula defusing.

use crate::common::*;
use serde_json::{json, Value};

fn id_of(task: &Value) -> i64 {
    task["WebServiceTaskId"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {task}"))
}

fn count(task: &Value, field: &str) -> u64 {
    task[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {task}"))
}

/// Imports `file` (named `filename`) into `table`, with `key` if given; waits for the end and
/// returns the finished task, after checking that every row was counted exactly once.
fn import_named(
    server: &Server,
    table: &str,
    key: Option<&str>,
    filename: &str,
    file: &[u8],
) -> Value {
    let mut query = format!("kind=csv.import&table={table}&filename={filename}");
    if let Some(key) = key {
        query.push_str(&format!("&key={key}"));
    }
    let data = post_file(server, &query, file).data(202);
    let task = wait_finished(server, id_of(&data));
    assert_eq!(
        count(&task, "TotalRecords"),
        count(&task, "SucceededRecords")
            + count(&task, "DuplicateRecords")
            + count(&task, "FailedRecords"),
        "counts do not add up: {task}"
    );
    assert_eq!(task["PercentComplete"], 100, "{task}");
    task
}

fn import(server: &Server, table: &str, key: Option<&str>, file: &[u8]) -> Value {
    import_named(server, table, key, "data.csv", file)
}

fn counts(task: &Value) -> [u64; 4] {
    [
        "TotalRecords",
        "SucceededRecords",
        "DuplicateRecords",
        "FailedRecords",
    ]
    .map(|f| count(task, f))
}

/// Runs csv.export with `params` and returns the finished task.
fn export_task(server: &Server, params: Value) -> Value {
    let id = submit(server, "csv.export", params);
    wait_finished(server, id)
}

/// Exports with `params`, expecting SUCCESS; returns the IO file's bytes.
fn export(server: &Server, params: Value) -> Vec<u8> {
    let task = export_task(server, params);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    let io = get(&server.url(&format!("/webservicetasks/{}/IoFile", id_of(&task))));
    assert_eq!(io.status, 200, "{}", io.text());
    io.body
}

fn file_of(server: &Server, task: &Value, which: &str) -> Answer {
    get(&server.url(&format!("/webservicetasks/{}/{which}", id_of(task))))
}

/// Shows bytes readably in assertion messages.
fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[test]
fn an_import_counts_every_row_and_an_export_gives_them_back_in_import_order() {
    let server = Server::start();
    let task = import(
        &server,
        "csv_basic",
        None,
        b"code,name,rate\n20,twenty,0.2\n10,ten,0.1\n30,thirty,0.3\n",
    );
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [3, 3, 0, 0]);
    assert_eq!(task["ErrFileName"], "");
    assert_eq!(
        file_of(&server, &task, "ErrorFile").error(404),
        "File is empty or does not exist."
    );
    let more = import(&server, "csv_basic", None, b"code,name,rate\n5,five,0.05\n");
    assert_eq!(counts(&more), [1, 1, 0, 0]);

    let csv = export(&server, json!({"table": "csv_basic"}));
    assert_eq!(
        csv,
        b"code,name,rate\r\n20,twenty,0.2\r\n10,ten,0.1\r\n30,thirty,0.3\r\n5,five,0.05\r\n",
        "{}",
        show(&csv)
    );
}

#[test]
fn the_log_file_tells_the_file_its_size_and_the_counts() {
    let server = Server::start();
    let file = b"k,v\n1,a\n1,b\n2\n";
    let task = import_named(&server, "csv_log", Some("k"), "Log%20Me.csv", file);
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(counts(&task), [3, 1, 1, 1]);
    assert_eq!(task["LogFileName"], "Log Me-log.txt");
    let log = file_of(&server, &task, "LogFile");
    assert_eq!(log.status, 200);
    let text = log.text();
    assert!(text.contains("Log Me.csv"), "{text}");
    assert!(text.contains(&file.len().to_string()), "{text}");
    assert!(text.contains("csv_log"), "{text}");
    assert!(text.lines().count() >= 3, "{text}");
}

#[test]
fn duplicates_within_the_file_and_against_earlier_imports_are_skipped_and_still_success() {
    let server = Server::start();
    let first = import(
        &server,
        "csv_dups",
        Some("code"),
        b"code,name\n1,one\n2,two\n1,uno\n3,three\n2,dos\n",
    );
    assert_eq!(
        first["Status"], "SUCCESS",
        "duplicates alone are no failure: {first}"
    );
    assert_eq!(counts(&first), [5, 3, 2, 0]);
    assert_eq!(first["ErrFileName"], "");

    let second = import(
        &server,
        "csv_dups",
        Some("code"),
        b"code,name\n3,drei\n4,four\n4,vier\n1,eins\n",
    );
    assert_eq!(second["Status"], "SUCCESS", "{second}");
    assert_eq!(counts(&second), [4, 1, 3, 0]);

    let csv = export(&server, json!({"table": "csv_dups"}));
    assert_eq!(
        csv,
        b"code,name\r\n1,one\r\n2,two\r\n3,three\r\n4,four\r\n",
        "{}",
        show(&csv)
    );

    // Without a key nothing is a duplicate.
    let keyless = import(&server, "csv_dups", None, b"code,name\n1,one\n1,one\n");
    assert_eq!(counts(&keyless), [2, 2, 0, 0]);
}

#[test]
fn a_composite_key_compares_all_its_columns() {
    let server = Server::start();
    let task = import(
        &server,
        "csv_composite",
        Some("a,b"),
        b"a,b,c\n1,x,p\n1,y,q\n2,x,r\n1,x,s\n2,x,t\n",
    );
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [5, 3, 2, 0]);
    let csv = export(&server, json!({"table": "csv_composite"}));
    assert_eq!(
        csv,
        b"a,b,c\r\n1,x,p\r\n1,y,q\r\n2,x,r\r\n",
        "{}",
        show(&csv)
    );
}

#[test]
fn importing_the_same_file_twice_with_a_key_imports_nothing_the_second_time() {
    let server = Server::start();
    let file = b"id,name,price\r\n1,apple,10\r\n2,pear,20\r\n3,plum,30\r\n4,fig,40\r\n";
    let first = import(&server, "csv_twice", Some("id"), file);
    assert_eq!(first["Status"], "SUCCESS", "{first}");
    assert_eq!(counts(&first), [4, 4, 0, 0]);
    let second = import(&server, "csv_twice", Some("id"), file);
    assert_eq!(second["Status"], "SUCCESS", "{second}");
    assert_eq!(counts(&second), [4, 0, 4, 0]);
    let csv = export(&server, json!({"table": "csv_twice"}));
    assert_eq!(csv, file, "{}", show(&csv));
}

#[test]
fn failed_rows_go_to_the_err_file_with_the_header_an_error_column_and_the_reason() {
    let server = Server::start();
    let file: &[u8] = b"id,name,price\n\
        1,apple,10\n\
        2,pear,20,extra\n\
        3,plum\n\
        ,nokey,5\n\
        4,\xff\xfe,7\n\
        1,apple again,11\n\
        5,\"fig, dried\",50\n";
    let task = import_named(
        &server,
        "csv_failed",
        Some("id"),
        "Sample%20Rate%20Plan.csv",
        file,
    );
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(counts(&task), [7, 2, 1, 4]);
    let message = task["Message"].as_str().unwrap();
    assert!(
        message.starts_with("Some records were not imported"),
        "{message}"
    );
    assert_eq!(task["ErrFileName"], "Sample Rate Plan-err.txt");
    assert_eq!(task["LogFileName"], "Sample Rate Plan-log.txt");

    let err = file_of(&server, &task, "ErrorFile");
    assert_eq!(err.status, 200);
    assert_eq!(
        err.header("Content-Disposition"),
        Some("attachment; filename=\"Sample Rate Plan-err.txt\"")
    );
    let body = err.body.clone();
    assert!(body.ends_with(b"\r\n"), "{}", show(&body));
    assert!(!body.starts_with(b"\xef\xbb\xbf"), "a BOM in the ERR file");
    // No field holds a line break, so every line is a record, and each ends in CRLF.
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 6, "{}", show(&body));
    assert_eq!(lines[5], b"", "{}", show(&body));
    assert!(
        lines[..5].iter().all(|l| l.ends_with(b"\r")),
        "records end in CRLF: {}",
        show(&body)
    );
    let lines: Vec<&[u8]> = lines[..5].iter().map(|l| &l[..l.len() - 1]).collect();
    assert_eq!(lines[0], b"id,name,price,error");
    assert_eq!(lines[1], b"2,pear,20,extra,\"expected 3 fields, found 4\"");
    assert_eq!(lines[2], b"3,plum,\"expected 3 fields, found 2\"");
    assert!(lines[3].starts_with(b",nokey,5,"), "{}", show(lines[3]));
    let reason = String::from_utf8_lossy(&lines[3][b",nokey,5,".len()..]).to_string();
    assert!(
        reason.contains("key") && reason.contains("empty"),
        "{reason}"
    );
    // The invalid bytes are kept as they were.
    assert!(lines[4].starts_with(b"4,\xff\xfe,7,"), "{}", show(lines[4]));
    let reason = String::from_utf8_lossy(&lines[4][b"4,\xff\xfe,7,".len()..]).to_string();
    assert!(reason.contains("UTF-8"), "{reason}");

    // Only the good rows were imported.
    let csv = export(&server, json!({"table": "csv_failed"}));
    assert_eq!(
        csv,
        b"id,name,price\r\n1,apple,10\r\n5,\"fig, dried\",50\r\n",
        "{}",
        show(&csv)
    );
}

#[test]
fn a_later_import_with_other_columns_ends_error_naming_them_and_imports_nothing() {
    let server = Server::start();
    let first = import(&server, "csv_header", Some("a"), b"a,b,c\n1,2,3\n");
    assert_eq!(first["Status"], "SUCCESS", "{first}");

    let both = import(&server, "csv_header", None, b"a,b,d\n4,5,6\n7,8,9\n");
    assert_eq!(both["Status"], "ERROR", "{both}");
    assert_eq!(both["SucceededRecords"], 0);
    let message = both["Message"].as_str().unwrap();
    assert!(
        message.contains("missing") && message.contains("\"c\""),
        "{message}"
    );
    assert!(
        message.contains("extra") && message.contains("\"d\""),
        "{message}"
    );
    assert!(
        message.contains("Nothing was imported") || message.contains("nothing"),
        "{message}"
    );

    let missing = import(&server, "csv_header", None, b"a,b\n4,5\n");
    assert_eq!(missing["Status"], "ERROR", "{missing}");
    let message = missing["Message"].as_str().unwrap();
    assert!(
        message.contains("missing") && message.contains("\"c\""),
        "{message}"
    );
    assert!(!message.contains("extra"), "{message}");

    let extra = import(&server, "csv_header", None, b"a,b,c,E\n4,5,6,7\n");
    assert_eq!(extra["Status"], "ERROR", "{extra}");
    let message = extra["Message"].as_str().unwrap();
    assert!(
        message.contains("extra") && message.contains("\"E\""),
        "{message}"
    );
    assert!(!message.contains("missing"), "{message}");

    // Case counts: "A" is not "a".
    let case = import(&server, "csv_header", None, b"A,b,c\n4,5,6\n");
    assert_eq!(case["Status"], "ERROR", "{case}");

    let csv = export(&server, json!({"table": "csv_header"}));
    assert_eq!(csv, b"a,b,c\r\n1,2,3\r\n", "{}", show(&csv));

    // The same set of columns in another order is the same dataset.
    let reordered = import(
        &server,
        "csv_header",
        Some("a"),
        b"c,a,b\n30,10,20\n3,1,2\n",
    );
    assert_eq!(reordered["Status"], "SUCCESS", "{reordered}");
    assert_eq!(counts(&reordered), [2, 1, 1, 0]);
    let csv = export(&server, json!({"table": "csv_header"}));
    assert_eq!(csv, b"a,b,c\r\n1,2,3\r\n10,20,30\r\n", "{}", show(&csv));
}

#[test]
fn a_key_column_missing_from_the_header_ends_error_naming_it() {
    let server = Server::start();
    let task = import(&server, "csv_badkey", Some("nope"), b"a,b\n1,2\n");
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(task["SucceededRecords"], 0);
    assert!(task["Message"].as_str().unwrap().contains("nope"), "{task}");
}

#[test]
fn a_file_with_no_header_ends_error() {
    let server = Server::start();
    for file in [
        &b"\n"[..],
        b"\r\n",
        b"\n\n\r\n",
        b"\xef\xbb\xbf",
        b"\xef\xbb\xbf\r\n",
    ] {
        let task = import(&server, "csv_noheader", None, file);
        assert_eq!(task["Status"], "ERROR", "{}: {task}", show(file));
        assert_eq!(counts(&task), [0, 0, 0, 0], "{task}");
        let message = task["Message"].as_str().unwrap();
        assert!(message.contains("header"), "{message}");
    }
    // No dataset was created.
    let no_dataset = export_task(&server, json!({"table": "csv_noheader"}));
    assert_eq!(no_dataset["Status"], "ERROR", "{no_dataset}");

    // A header alone is a dataset with no rows.
    let header_only = import(&server, "csv_headeronly", None, b"x,y\n");
    assert_eq!(header_only["Status"], "SUCCESS", "{header_only}");
    assert_eq!(counts(&header_only), [0, 0, 0, 0]);
    assert_eq!(
        export(&server, json!({"table": "csv_headeronly"})),
        b"x,y\r\n"
    );
}

#[test]
fn rfc4180_edge_cases_are_kept_byte_for_byte() {
    let server = Server::start();
    let file: &[u8] = b"\xef\xbb\xbfid,text\n\
        1,\"a,b\"\n\
        2,\"say \"\"hi\"\"\"\n\
        3,\"line1\nline2\"\n\
        4,\"crlf1\r\ncrlf2\"\r\n\
        5,ab\"cd\n\
        6,\n\
        7,\"\"\n\
        8,  spaced  \n\
        9,caf\xc3\xa9 \xe2\x82\xac\n\
        10,last";
    // The key is the first column: the BOM must not be part of its name.
    let task = import(&server, "csv_rfc", Some("id"), file);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [10, 10, 0, 0]);

    let csv = export(&server, json!({"table": "csv_rfc", "raw": true}));
    let expected: &[u8] = b"id,text\r\n\
        1,\"a,b\"\r\n\
        2,\"say \"\"hi\"\"\"\r\n\
        3,\"line1\nline2\"\r\n\
        4,\"crlf1\r\ncrlf2\"\r\n\
        5,\"ab\"\"cd\"\r\n\
        6,\r\n\
        7,\r\n\
        8,  spaced  \r\n\
        9,caf\xc3\xa9 \xe2\x82\xac\r\n\
        10,last\r\n";
    assert_eq!(csv, expected, "{}", show(&csv));

    // The exported file imports again to the same cells: every row is a duplicate.
    let again = import(&server, "csv_rfc", Some("id"), &csv);
    assert_eq!(counts(&again), [10, 0, 10, 0], "{again}");
    // And into a new dataset it round-trips exactly.
    let copy = import(&server, "csv_rfc_copy", None, &csv);
    assert_eq!(counts(&copy), [10, 10, 0, 0], "{copy}");
    assert_eq!(
        export(&server, json!({"table": "csv_rfc_copy", "raw": true})),
        expected
    );
}

#[test]
fn crlf_files_and_a_last_line_without_newline_import_fully() {
    let server = Server::start();
    let task = import(&server, "csv_crlf", Some("k"), b"k,v\r\n1,a\r\n2,b\r\n3,c");
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [3, 3, 0, 0]);
    let csv = export(&server, json!({"table": "csv_crlf"}));
    assert_eq!(csv, b"k,v\r\n1,a\r\n2,b\r\n3,c\r\n", "{}", show(&csv));
}

#[test]
fn column_names_are_kept_exactly_as_written() {
    let server = Server::start();
    let task = import(
        &server,
        "csv_names",
        None,
        b"Code, Rate Plan ,price\n1,a,2\n",
    );
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    let csv = export(&server, json!({"table": "csv_names"}));
    assert_eq!(
        csv,
        b"Code, Rate Plan ,price\r\n1,a,2\r\n",
        "{}",
        show(&csv)
    );
    // A later import with the names in another case is another set of columns.
    let other = import(
        &server,
        "csv_names",
        None,
        b"code, Rate Plan ,price\n1,a,2\n",
    );
    assert_eq!(other["Status"], "ERROR", "{other}");
}

#[test]
fn an_export_is_crlf_csv_with_a_header_named_after_the_table() {
    let server = Server::start();
    import(&server, "csv_export_fmt", None, b"a,b\n1,x\n2,y\n");
    let task = export_task(&server, json!({"table": "csv_export_fmt"}));
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(task["IoFileName"], "csv_export_fmt.csv");
    assert_eq!(task["LogFileName"], "csv_export_fmt-log.txt");
    assert_eq!(task["ErrFileName"], "");
    assert_eq!(task["PercentComplete"], 100);
    let io = file_of(&server, &task, "IoFile");
    assert_eq!(io.status, 200);
    assert_eq!(io.header("Content-Type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        io.header("Content-Disposition"),
        Some("attachment; filename=\"csv_export_fmt.csv\"")
    );
    assert_eq!(
        io.header("Content-Length"),
        Some(io.body.len().to_string().as_str())
    );
    assert_eq!(io.body, b"a,b\r\n1,x\r\n2,y\r\n", "{}", show(&io.body));

    // An uploaded file is replaced by the export, and renamed.
    let data = post_file(
        &server,
        "kind=csv.export&table=csv_export_fmt&filename=input.txt",
        b"junk",
    )
    .data(202);
    assert_eq!(data["IoFileName"], "input.txt");
    let done = wait_finished(&server, id_of(&data));
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["IoFileName"], "csv_export_fmt.csv");
    let io = file_of(&server, &done, "IoFile");
    assert_eq!(io.body, b"a,b\r\n1,x\r\n2,y\r\n", "{}", show(&io.body));
    assert_eq!(
        io.header("Content-Disposition"),
        Some("attachment; filename=\"csv_export_fmt.csv\"")
    );

    // An empty dataset exports its header.
    import(&server, "csv_export_empty", None, b"only,header\n");
    assert_eq!(
        export(&server, json!({"table": "csv_export_empty"})),
        b"only,header\r\n"
    );
}

#[test]
fn an_export_of_chosen_columns_keeps_the_given_order() {
    let server = Server::start();
    import(&server, "csv_columns", None, b"a,b,c,d\n1,2,3,4\n5,6,7,8\n");
    let csv = export(&server, json!({"table": "csv_columns", "columns": "c,a"}));
    assert_eq!(csv, b"c,a\r\n3,1\r\n7,5\r\n", "{}", show(&csv));
    let csv = export(&server, json!({"table": "csv_columns", "columns": "d,b,c"}));
    assert_eq!(csv, b"d,b,c\r\n4,2,3\r\n8,6,7\r\n", "{}", show(&csv));
    let csv = export(&server, json!({"table": "csv_columns", "columns": "b"}));
    assert_eq!(csv, b"b\r\n2\r\n6\r\n", "{}", show(&csv));
}

#[test]
fn an_export_defuses_formulas_unless_raw() {
    let server = Server::start();
    let file: &[u8] = b"id,cell\n\
        1,=1+1\n\
        2,+1\n\
        3,-1\n\
        4,@SUM(A1)\n\
        5,\tx\n\
        6,\"\rx\"\n\
        7,plain\n\
        8,a=b\n\
        9,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n\
        10,\n";
    let task = import(&server, "csv_formula", None, file);
    assert_eq!(counts(&task), [10, 10, 0, 0], "{task}");

    let csv = export(&server, json!({"table": "csv_formula"}));
    let defused: &[u8] = b"id,cell\r\n\
        1,'=1+1\r\n\
        2,'+1\r\n\
        3,'-1\r\n\
        4,'@SUM(A1)\r\n\
        5,'\tx\r\n\
        6,\"'\rx\"\r\n\
        7,plain\r\n\
        8,a=b\r\n\
        9,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\r\n\
        10,\r\n";
    assert_eq!(csv, defused, "{}", show(&csv));

    let raw: &[u8] = b"id,cell\r\n\
        1,=1+1\r\n\
        2,+1\r\n\
        3,-1\r\n\
        4,@SUM(A1)\r\n\
        5,\tx\r\n\
        6,\"\rx\"\r\n\
        7,plain\r\n\
        8,a=b\r\n\
        9,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\r\n\
        10,\r\n";
    assert_eq!(
        export(&server, json!({"table": "csv_formula", "raw": "true"})),
        raw
    );
    // A boolean param is the same as its text.
    assert_eq!(
        export(&server, json!({"table": "csv_formula", "raw": true})),
        raw
    );
    assert_eq!(
        export(&server, json!({"table": "csv_formula", "raw": false})),
        defused
    );
    // With a column subset too.
    let csv = export(&server, json!({"table": "csv_formula", "columns": "cell"}));
    assert!(
        csv.starts_with(b"cell\r\n'=1+1\r\n'+1\r\n"),
        "{}",
        show(&csv)
    );
}

#[test]
fn an_export_of_an_unknown_table_ends_error_naming_it() {
    let server = Server::start();
    let task = export_task(&server, json!({"table": "csv_no_such_table"}));
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(task["PercentComplete"], 100);
    let message = task["Message"].as_str().unwrap();
    assert!(message.contains("csv_no_such_table"), "{message}");
    assert_eq!(
        file_of(&server, &task, "IoFile").error(404),
        "File is empty or does not exist."
    );
}

#[test]
fn an_export_of_an_unknown_column_ends_error_naming_it() {
    let server = Server::start();
    import(&server, "csv_unknown_col", None, b"a,b\n1,2\n");
    let task = export_task(
        &server,
        json!({"table": "csv_unknown_col", "columns": "a,zzz"}),
    );
    assert_eq!(task["Status"], "ERROR", "{task}");
    let message = task["Message"].as_str().unwrap();
    assert!(message.contains("zzz"), "{message}");
    assert_eq!(
        file_of(&server, &task, "IoFile").error(404),
        "File is empty or does not exist."
    );
    // Column names are matched exactly: case counts.
    let task = export_task(&server, json!({"table": "csv_unknown_col", "columns": "A"}));
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert!(
        task["Message"].as_str().unwrap().contains("\"A\""),
        "{task}"
    );
}

#[test]
fn a_header_that_cannot_make_a_dataset_ends_error_and_imports_nothing() {
    let server = Server::start();
    for (file, names) in [
        (&b"a,b,a\n1,2,3\n"[..], "\"a\""),
        (b"a,,c\n1,2,3\n", "2"),
        (b"a,b,\n1,2,3\n", "3"),
        (b"a,\xff\n1,2\n", "UTF-8"),
    ] {
        let task = import(&server, "csv_badheader", None, file);
        assert_eq!(task["Status"], "ERROR", "{}: {task}", show(file));
        assert_eq!(task["SucceededRecords"], 0, "{task}");
        let message = task["Message"].as_str().unwrap();
        assert!(message.contains(names), "{}: {message}", show(file));
    }
    // None of them created the dataset.
    let no_dataset = export_task(&server, json!({"table": "csv_badheader"}));
    assert_eq!(no_dataset["Status"], "ERROR", "{no_dataset}");
}

#[test]
fn cells_are_text_kept_exactly_and_keys_compare_exactly() {
    let server = Server::start();
    // As numbers these would be equal; as text they are all different.
    let file = b"k,v\n1,a\n01,b\n1.0,c\n 1,d\n1 ,e\n1e0,f\n007,g\n-0,h\n0x1,i\nA,j\na,k\n";
    let task = import(&server, "csv_text", Some("k"), file);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [11, 11, 0, 0]);
    let csv = export(&server, json!({"table": "csv_text", "raw": true}));
    assert_eq!(
        csv,
        b"k,v\r\n1,a\r\n01,b\r\n1.0,c\r\n 1,d\r\n1 ,e\r\n1e0,f\r\n007,g\r\n-0,h\r\n0x1,i\r\nA,j\r\na,k\r\n",
        "{}",
        show(&csv)
    );
    let again = import(&server, "csv_text", Some("k"), b"k,v\n007,x\n1.00,y\n");
    assert_eq!(counts(&again), [2, 1, 1, 0], "{again}");
}

#[test]
fn column_names_with_quotes_commas_and_sql_words_work() {
    let server = Server::start();
    let header: &[u8] = b"select,\"we\"\"ird\",\"a,b\",drop table x;--,prix \xe2\x82\xac";
    let mut file = header.to_vec();
    file.extend_from_slice(b"\n1,2,3,4,5\n");
    let task = import(&server, "csv_weird", Some("we\"ird"), &file);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    let csv = export(&server, json!({"table": "csv_weird", "raw": true}));
    let mut expected = header.to_vec();
    expected.extend_from_slice(b"\r\n1,2,3,4,5\r\n");
    assert_eq!(csv, expected, "{}", show(&csv));
    let csv = export(
        &server,
        json!({"table": "csv_weird", "columns": "prix €,we\"ird,select"}),
    );
    assert_eq!(
        csv,
        "prix €,\"we\"\"ird\",select\r\n5,2,1\r\n".as_bytes(),
        "{}",
        show(&csv)
    );
}

#[test]
fn the_err_file_quotes_failed_fields_as_rfc4180_needs() {
    let server = Server::start();
    let file: &[u8] = b"id,text,n\n\
        1,\"two\nlines\"\n\
        2,\"a,b\",\"say \"\"x\"\"\",9\n\
        3,ok,3\n";
    let task = import(&server, "csv_errquote", None, file);
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(counts(&task), [3, 1, 0, 2]);
    let err = file_of(&server, &task, "ErrorFile");
    assert_eq!(err.status, 200);
    assert_eq!(
        err.body,
        b"id,text,n,error\r\n\
          1,\"two\nlines\",\"expected 3 fields, found 2\"\r\n\
          2,\"a,b\",\"say \"\"x\"\"\",9,\"expected 3 fields, found 4\"\r\n",
        "{}",
        show(&err.body)
    );
}

#[test]
fn the_err_file_of_a_file_with_a_bom_has_the_header_without_it() {
    let server = Server::start();
    let task = import(
        &server,
        "csv_errbom",
        Some("id"),
        b"\xef\xbb\xbfid,v\r\n1,a\r\n2\r\n",
    );
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(counts(&task), [2, 1, 0, 1]);
    let err = file_of(&server, &task, "ErrorFile");
    assert_eq!(
        err.body,
        b"id,v,error\r\n2,\"expected 2 fields, found 1\"\r\n",
        "{}",
        show(&err.body)
    );
}

#[test]
fn the_key_names_columns_exactly_as_written_spaces_included() {
    let server = Server::start();
    // A common header style: a space after each comma. The columns are "id" and " name".
    let task = import(
        &server,
        "csv_spaced_key",
        Some("%20name"),
        b"id, name\n1, a\n2, a\n3, b\n",
    );
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [3, 2, 1, 0]);
}

#[test]
fn the_columns_param_names_columns_exactly_as_written_spaces_included() {
    let server = Server::start();
    let task = import(
        &server,
        "csv_spaced_columns",
        None,
        b"id, name\n1, a\n2, b\n",
    );
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    let csv = export(
        &server,
        json!({"table": "csv_spaced_columns", "columns": " name"}),
    );
    assert_eq!(csv, b" name\r\n a\r\n b\r\n", "{}", show(&csv));
}

#[test]
fn any_header_is_stored_exactly_even_names_sqlite_would_confuse() {
    // Names equal but for case, SQLite's own row id names, and dataset names equal but for
    // case or shaped like taskbox's own tables: each is its own column or dataset.
    let server = Server::start();
    let file = b"id,ID,rowid,oid,_rowid_,task_id,c1\n1,2,3,4,5,6,7\n";
    let task = import(&server, "csv_names", Some("ID"), file);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    let csv = export(&server, json!({"table": "csv_names"}));
    assert_eq!(
        csv,
        b"id,ID,rowid,oid,_rowid_,task_id,c1\r\n1,2,3,4,5,6,7\r\n",
        "{}",
        show(&csv)
    );
    let csv = export(
        &server,
        json!({"table": "csv_names", "columns": "rowid,ID"}),
    );
    assert_eq!(csv, b"rowid,ID\r\n3,2\r\n", "{}", show(&csv));

    for table in ["CSV_NAMES", "csv_names__task", "ds_1"] {
        let other = import(&server, table, None, b"x\n9\n");
        assert_eq!(other["Status"], "SUCCESS", "{table}: {other}");
        let csv = export(&server, json!({ "table": table }));
        assert_eq!(csv, b"x\r\n9\r\n", "{table}: {}", show(&csv));
    }
    // The first dataset is untouched by the others.
    let csv = export(&server, json!({"table": "csv_names", "columns": "id"}));
    assert_eq!(csv, b"id\r\n1\r\n", "{}", show(&csv));
}

#[test]
fn an_export_writes_column_names_exactly_even_formula_like_ones() {
    let server = Server::start();
    let task = import(&server, "csv_formula_header", None, b"=x,@y\n=1,ok\n");
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    let csv = export(&server, json!({"table": "csv_formula_header"}));
    assert_eq!(csv, b"=x,@y\r\n'=1,ok\r\n", "{}", show(&csv));
    // So an export imports back into the same dataset.
    let again = import(&server, "csv_formula_header", None, &csv);
    assert_eq!(again["Status"], "SUCCESS", "{again}");
}

#[test]
fn a_record_longer_than_the_limit_ends_the_import_error_and_imports_nothing() {
    let server = Server::start();
    // An unclosed quote swallows the rest of a 17 MiB file into one record.
    let mut file = b"id,name\n1,ok\n2,\"never closed ".to_vec();
    file.resize(17 << 20, b'x');
    let task = import(&server, "csv_endless", None, &file);
    assert_eq!(task["Status"], "ERROR", "{task}");
    let message = task["Message"].as_str().unwrap();
    assert!(message.contains("longer than 16 MiB"), "{message}");
    assert!(message.ends_with("Nothing was imported."), "{message}");
    assert_eq!(counts(&task), [0, 0, 0, 0]);
    assert_eq!(
        export_task(&server, json!({"table": "csv_endless"}))["Status"],
        "SUCCESS"
    );
    let csv = export(&server, json!({"table": "csv_endless"}));
    assert_eq!(csv, b"id,name\r\n", "{}", show(&csv));
}
