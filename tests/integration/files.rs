//! Files: large uploads stream into the store and back out byte for byte without the
//! server holding them in memory, through a raw body and through multipart/form-data; an
//! empty body is a task without an IO file.

use std::io::Read;
use std::time::Duration;

use crate::common::*;

/// Deterministic pseudo-random bytes (splitmix64), `len` of them, as a stream.
struct Noise {
    state: u64,
    word: [u8; 8],
    used: usize,
    left: u64,
}

impl Noise {
    fn new(seed: u64, len: u64) -> Noise {
        Noise {
            state: seed,
            word: [0; 8],
            used: 8,
            left: len,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.used == 8 {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            self.word = (z ^ (z >> 31)).to_le_bytes();
            self.used = 0;
        }
        let b = self.word[self.used];
        self.used += 1;
        b
    }
}

impl Read for Noise {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = (out.len() as u64).min(self.left) as usize;
        for b in &mut out[..n] {
            *b = self.next_byte();
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads `actual` to its end and checks it equals `expected` byte for byte, holding one
/// buffer of each; returns the number of bytes compared.
fn assert_same_stream(mut actual: impl Read, mut expected: impl Read) -> u64 {
    const BUF: usize = 256 * 1024;
    let mut a = vec![0u8; BUF];
    let mut e = vec![0u8; BUF];
    let mut offset: u64 = 0;
    loop {
        let n = read_full(&mut actual, &mut a);
        let m = read_full(&mut expected, &mut e[..n.max(1)]);
        if n == 0 {
            assert_eq!(m, 0, "the download ended early, after {offset} bytes");
            return offset;
        }
        assert_eq!(
            m,
            n,
            "the download is longer than the upload ({} bytes)",
            offset + m as u64
        );
        if a[..n] != e[..n] {
            let at = a[..n]
                .iter()
                .zip(&e[..n])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "the download differs from the upload at byte {}",
                offset + at as u64
            );
        }
        offset += n as u64;
    }
}

/// Fills `buf` as far as the stream allows; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading failed after {filled} bytes: {e}"),
        }
    }
    filled
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
}

/// Downloads task `id`'s IO file and checks it equals `expected` (`len` bytes, announced
/// in Content-Length), streaming.
fn assert_io_file(server: &Server, id: i64, expected: impl Read, len: u64) {
    let response = agent()
        .get(&server.url(&format!("/webservicetasks/{id}/IoFile")))
        .call()
        .unwrap_or_else(|e| panic!("downloading the IO file of task {id}: {e}"));
    assert_eq!(response.status(), 200);
    let length = response.header("Content-Length").unwrap_or_else(|| {
        panic!(
            "the download of {len} bytes has no Content-Length (Transfer-Encoding: {:?})",
            response.header("Transfer-Encoding")
        )
    });
    assert_eq!(length.parse::<u64>().ok(), Some(len), "Content-Length");
    let compared = assert_same_stream(response.into_reader(), expected);
    assert_eq!(compared, len);
}

#[test]
fn a_200_mb_raw_upload_streams_in_and_out_byte_for_byte_in_little_memory() {
    const SIZE: u64 = 200 * 1024 * 1024;
    const SEED: u64 = 0x7a5c_b0c5;
    let server = Server::start_with(&["--workers", "1"]);
    let response = agent()
        .post(&server.url("/webservicetasks?kind=sleep&seconds=0&filename=big.bin"))
        .set("Content-Type", "application/octet-stream")
        .set("Content-Length", &SIZE.to_string())
        .send(Noise::new(SEED, SIZE));
    let answer = match response {
        Ok(r) => into_answer(r),
        Err(ureq::Error::Status(_, r)) => into_answer(r),
        Err(e) => panic!("uploading: {e}"),
    };
    let data = answer.data(202);
    let id = data["WebServiceTaskId"].as_i64().expect("id");
    assert_eq!(data["IoFileName"], "big.bin", "{data}");
    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["IoFileName"], "big.bin", "{done}");

    assert_io_file(&server, id, Noise::new(SEED, SIZE), SIZE);

    let peak = server.peak_rss();
    assert!(
        peak < 100 * 1024 * 1024,
        "the server's peak RSS was {} MiB moving a 200 MiB file",
        peak / (1024 * 1024)
    );
}

#[test]
fn a_chunked_raw_upload_is_stored_whole() {
    // No Content-Length: ureq sends the body with chunked transfer encoding.
    const SIZE: u64 = 3 * 1024 * 1024 + 12345;
    const SEED: u64 = 99;
    let server = Server::start();
    let response = agent()
        .post(&server.url("/webservicetasks?kind=sleep&filename=chunked.bin"))
        .set("Content-Type", "application/octet-stream")
        .send(Noise::new(SEED, SIZE));
    let answer = match response {
        Ok(r) => into_answer(r),
        Err(ureq::Error::Status(_, r)) => into_answer(r),
        Err(e) => panic!("uploading: {e}"),
    };
    let id = answer.data(202)["WebServiceTaskId"].as_i64().expect("id");
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
    assert_io_file(&server, id, Noise::new(SEED, SIZE), SIZE);
}

/// A file whose content is full of near-boundaries: the form's own delimiter without its
/// CRLF, with one byte changed, cut short, and strings that look like part headers.
fn tricky_file(boundary: &str, size: usize) -> Vec<u8> {
    let mut file = vec![0u8; size];
    read_full(&mut Noise::new(2024, size as u64), &mut file);
    let b = boundary.as_bytes();
    let mut changed = b.to_vec();
    *changed.last_mut().unwrap() ^= 1;
    let traps: Vec<Vec<u8>> = vec![
        [b"--".as_slice(), b].concat(),
        [b"\n--".as_slice(), b].concat(),
        [b"\r--".as_slice(), b].concat(),
        [b"\r\n-".as_slice(), b].concat(),
        [b"\r\n--".as_slice(), &changed].concat(),
        [b"\r\n--".as_slice(), &b[..b.len() - 1], b"~".as_slice()].concat(),
        [b"\r\n--".as_slice(), &b[..b.len() / 2], b"~".as_slice()].concat(),
        b"\r\n--".to_vec(),
        b"\r\n\r\n".to_vec(),
        [
            b"\r\n\r\n--".as_slice(),
            &b[..b.len() - 3],
            b"--\r\n".as_slice(),
        ]
        .concat(),
        b"Content-Disposition: form-data; name=\"kind\"\r\n\r\ncsv.import\r\n".to_vec(),
    ];
    // Place traps everywhere, including across the server's 64 KiB buffer edges and at the
    // very start and end of the file.
    let mut positions: Vec<usize> = vec![0, size - 70];
    let mut edge = 64 * 1024;
    while edge + 64 < size {
        positions.push(edge - 3);
        positions.push(edge - 40);
        edge += 64 * 1024;
    }
    let mut pos = 1000;
    while pos + 80 < size {
        positions.push(pos);
        pos += 9973;
    }
    // Traps never touch each other, so no two of them join into the real delimiter.
    positions.sort_unstable();
    let mut last_end = 0;
    positions.retain(|&at| {
        let keep = at == 0 || at >= last_end + 8;
        if keep {
            last_end = at + 80;
        }
        keep
    });
    for (i, at) in positions.into_iter().enumerate() {
        let trap = &traps[i % traps.len()];
        // The random byte before a trap must not complete it into the delimiter.
        if at >= 2 {
            file[at - 2..at].copy_from_slice(b"x-");
        }
        let end = (at + trap.len()).min(size);
        file[at..end].copy_from_slice(&trap[..end - at]);
    }
    // A trailing lone CR (and CRLF-) just before the real delimiter.
    let n = file.len();
    file[n - 3..].copy_from_slice(b"\r\n-");
    file
}

#[test]
fn a_multipart_upload_with_boundary_like_content_round_trips_byte_for_byte() {
    const BOUNDARY: &str = "----taskboxFormBoundary7MA4YWxkTrZu0gW";
    let file = tricky_file(BOUNDARY, 20 * 1024 * 1024);
    let delimiter = format!("\r\n--{BOUNDARY}");
    assert!(
        !file
            .windows(delimiter.len())
            .any(|w| w == delimiter.as_bytes()),
        "the test file must not hold the real delimiter"
    );
    let mut body = Vec::with_capacity(file.len() + 1024);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"tricky data.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file);
    body.extend_from_slice(
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n0\r\n\
             --{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    let server = Server::start();
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let answer = send(
        "POST",
        &server.url("/webservicetasks"),
        &[("Content-Type", content_type.as_str())],
        Some(&body),
    );
    drop(body);
    let data = answer.data(202);
    let id = data["WebServiceTaskId"].as_i64().expect("id");
    assert_eq!(data["Kind"], "sleep", "{data}");
    assert_eq!(data["IoFileName"], "tricky data.bin", "{data}");
    // The field after the file is read too (the only param: sleep declares no other).
    assert_eq!(data["Params"]["seconds"], "0", "{data}");
    assert_eq!(
        data["Params"],
        serde_json::json!({"seconds": "0"}),
        "{data}"
    );
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
    assert_io_file(&server, id, file.as_slice(), file.len() as u64);
}

#[test]
fn an_empty_body_makes_a_task_without_io_file() {
    let server = Server::start();
    let check = |answer: Answer| {
        let data = answer.data(202);
        assert_eq!(data["IoFileName"], "", "{data}");
        let id = data["WebServiceTaskId"].as_i64().expect("id");
        let done = wait_finished(&server, id);
        assert_eq!(done["Status"], "SUCCESS", "{done}");
        assert_eq!(done["IoFileName"], "", "{done}");
        let missing = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
        assert_eq!(missing.error(404), "File is empty or does not exist.");
    };
    // With a Content-Type and Content-Length: 0.
    check(send(
        "POST",
        &server.url("/webservicetasks?kind=sleep&seconds=0&filename=nothing.csv"),
        &[("Content-Type", "text/csv")],
        Some(b""),
    ));
    // With neither header.
    check(send(
        "POST",
        &server.url("/webservicetasks?kind=sleep&seconds=0"),
        &[],
        None,
    ));
}

#[test]
fn a_download_completes_whole_when_its_task_is_deleted_midway() {
    // Far more than the socket buffers hold, so most of it is read after the delete.
    const SIZE: u64 = 64 * 1024 * 1024;
    const SEED: u64 = 0xde1e7e;
    let server = Server::start();
    let response = agent()
        .post(&server.url("/webservicetasks?kind=sleep&filename=doomed.bin"))
        .set("Content-Type", "application/octet-stream")
        .set("Content-Length", &SIZE.to_string())
        .send(Noise::new(SEED, SIZE));
    let answer = match response {
        Ok(r) => into_answer(r),
        Err(ureq::Error::Status(_, r)) => into_answer(r),
        Err(e) => panic!("uploading: {e}"),
    };
    let id = answer.data(202)["WebServiceTaskId"].as_i64().expect("id");
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");

    let request = format!(
        "GET /webservicetasks/{id}/IoFile HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut stream = send_raw(&server, request.as_bytes());
    // A server that stops short after promising the length leaves the client waiting:
    // the timeout turns that into a failure.
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let (head, body_start) =
        read_head(&mut stream).expect("the connection closed before the head ended");
    assert!(head.text.starts_with("HTTP/1.1 200"), "{}", head.text);
    assert_eq!(head.content_length(), Some(SIZE as usize), "{}", head.text);
    // What came with the head, then the socket.
    let mut body = std::io::Cursor::new(body_start).chain(stream);
    let mut expected = Noise::new(SEED, SIZE);
    // Read the first MiB slowly, then delete the task while most of the file is unsent.
    const FIRST: usize = 1024 * 1024;
    let mut first = vec![0u8; FIRST];
    let mut got = 0;
    while got < FIRST {
        let n = read_full(&mut body, &mut first[got..(got + 64 * 1024).min(FIRST)]);
        assert!(n > 0, "the download ended after {got} bytes");
        got += n;
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut want = vec![0u8; first.len()];
    read_full(&mut expected, &mut want);
    assert!(first == want, "the first MiB differs from the upload");
    let deleted = delete(&server.url(&format!("/webservicetasks/{id}")));
    deleted.data(200);
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/IoFile"))).error(404),
        "File is empty or does not exist."
    );
    // The rest arrives whole: the download reads the file as it was when it began.
    let rest = SIZE - first.len() as u64;
    assert_eq!(assert_same_stream(body.take(rest), expected), rest);
}
