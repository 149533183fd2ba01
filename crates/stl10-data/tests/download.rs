//! `download` against a small HTTP server of the test's own on 127.0.0.1, serving an STL-10
//! fixture archive: a full fetch, a dropped connection resumed by a range request, a wrong
//! digest, a 404, and an archive without the expected folder.

use std::net::TcpListener;

use stl10_data::download::{Archive, Outcome, Quiet, download};
use stl10_data::{DataConfig, DataError, load};
use test_support::fixtures::{HttpServer, md5_hex, stl10_archive};

fn archive(url: &str, md5: &str) -> Archive {
    Archive {
        url: url.into(),
        md5: md5.into(),
        ..Archive::stl10()
    }
}

fn problem(e: DataError) -> String {
    e.to_string()
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request_and_the_data_loads() {
    let body = stl10_archive(tempfile::tempdir().unwrap().path(), "stl10_binary").unwrap();
    let half = body.len() / 2;
    let server = HttpServer::start(body.clone(), 2, Some(half));
    let dir = tempfile::tempdir().unwrap();
    let a = archive(&server.url, &md5_hex(&body));
    let e = problem(download(&a, dir.path(), &mut Quiet).unwrap_err());
    assert!(
        e.contains(&server.url) && e.contains("run the command again to resume"),
        "{e}"
    );
    let partial = dir.path().join("stl10_binary.tar.gz.partial");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept <= half as u64, "{kept} of {half} kept");
    assert!(!dir.path().join("stl10_binary").exists());

    let outcome = download(&a, dir.path(), &mut Quiet).unwrap();
    let folder = dir.path().join("stl10_binary");
    assert_eq!(
        outcome,
        Outcome::Fetched {
            folder: folder.clone(),
            resumed_at: kept
        }
    );
    assert_eq!(server.finish(), [None, Some(format!("bytes={kept}-"))]);
    assert!(!partial.exists(), "the archive is deleted once unpacked");
    assert!(!dir.path().join(".stl10_binary.partial").exists());
    let ds = load(
        &DataConfig {
            root: dir.path().to_path_buf(),
            ..DataConfig::default()
        },
        0,
    )
    .unwrap();
    assert_eq!(
        (ds.train.len(), ds.test.len(), ds.unlabeled.len()),
        (20, 6, 40)
    );
    // Done once: a second call finds the folder and asks nothing.
    let again = download(
        &archive("http://127.0.0.1:1/none", "00"),
        dir.path(),
        &mut Quiet,
    );
    assert_eq!(again.unwrap(), Outcome::Present(folder));
}

#[test]
fn a_wrong_digest_deletes_the_download_and_unpacks_nothing() {
    let body = stl10_archive(tempfile::tempdir().unwrap().path(), "stl10_binary").unwrap();
    let server = HttpServer::start(body, 1, None);
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0123456789abcdef0123456789abcdef";
    let e = problem(download(&archive(&server.url, wrong), dir.path(), &mut Quiet).unwrap_err());
    assert!(
        e.contains("MD5") && e.contains(wrong) && e.contains("deleted"),
        "{e}"
    );
    server.finish();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let server = HttpServer::start(Vec::new(), 1, None);
    let missing = server.url.replace("a.tar.gz", "missing.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let e = problem(download(&archive(&missing, "00"), dir.path(), &mut Quiet).unwrap_err());
    assert!(e.contains(&missing) && e.contains("HTTP 404"), "{e}");
    server.finish();
    assert!(!dir.path().join("stl10_binary").exists());
}

#[test]
fn an_archive_without_the_folder_is_refused() {
    let body = stl10_archive(tempfile::tempdir().unwrap().path(), "something_else").unwrap();
    let server = HttpServer::start(body.clone(), 1, None);
    let dir = tempfile::tempdir().unwrap();
    let e = problem(
        download(
            &archive(&server.url, &md5_hex(&body)),
            dir.path(),
            &mut Quiet,
        )
        .unwrap_err(),
    );
    assert!(e.contains("holds no stl10_binary/ folder"), "{e}");
    server.finish();
    assert!(!dir.path().join("stl10_binary").exists());
    assert!(!dir.path().join(".stl10_binary.partial").exists());
}

#[test]
fn a_closed_port_is_a_clear_error() {
    // A port that was just free: nothing listens there any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/a.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let e = problem(download(&archive(&url, "00"), dir.path(), &mut Quiet).unwrap_err());
    assert!(e.contains(&url), "{e}");
    assert!(!dir.path().join("stl10_binary.tar.gz.partial").exists());
}
