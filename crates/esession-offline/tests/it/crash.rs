//! The durable replay store: an entry recorded before a kill -9 is still rejected after restart.

use chrono::{DateTime, Utc};
use esession_offline::replay::ReplayStore;
use esession_offline::replay::durable::DurableReplay;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// `secs` seconds after the epoch.
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("esession-offline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("replay.redb")
}

#[test]
fn replay_crash_child() {
    let Ok(path) = std::env::var("ESESSION_REPLAY_CHILD") else { return };
    let mut s = DurableReplay::open(std::path::Path::new(&path)).unwrap();
    for i in 0u64.. {
        s.record(&[format!("d:{i}").into_bytes(), format!("NB:{i}").into_bytes()], DateTime::<Utc>::MAX_UTC)
            .unwrap();
        println!("recorded {i}");
    }
}

#[test]
fn entries_survive_kill_9_and_expire() {
    let exe = std::env::current_exe().unwrap();
    for round in 0..4u64 {
        let path = tmp(&format!("r{round}"));
        let mut child = Command::new(&exe)
            .args(["--exact", "crash::replay_crash_child", "--nocapture", "--test-threads=1"])
            .env("ESESSION_REPLAY_CHILD", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut confirmed = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            if let Some(n) = line.unwrap().strip_prefix("recorded ") {
                confirmed.push(n.parse::<u64>().unwrap());
                if confirmed.len() as u64 >= 2 + round * 5 {
                    break;
                }
            }
        }
        child.kill().unwrap();
        let _ = child.wait();
        let s = DurableReplay::open(&path).unwrap();
        for i in &confirmed {
            assert!(s.seen(format!("d:{i}").as_bytes(), at(0)), "d:{i} lost");
            assert!(s.seen(format!("NB:{i}").as_bytes(), at(0)), "NB:{i} lost");
        }
    }
    // Bounded growth: entries expire with their options.
    let path = tmp("expiry");
    let mut s = DurableReplay::open(&path).unwrap();
    s.record(&[b"old".to_vec()], at(100)).unwrap();
    s.record(&[b"new".to_vec()], at(1000)).unwrap();
    s.purge(at(500)).unwrap();
    drop(s);
    let s = DurableReplay::open(&path).unwrap();
    assert_eq!(s.len(), 1);
    assert!(s.seen(b"new", at(500)) && !s.seen(b"old", at(0)));
}

#[test]
fn a_batch_is_durable_as_a_whole() {
    // record_all: one transaction; after reopening, every entry is there with its own expiry.
    let path = tmp("batch");
    {
        let mut s = DurableReplay::open(&path).unwrap();
        s.record_all(&[(b"d:1".to_vec(), at(100)), (b"NB:1".to_vec(), at(100)), (b"d:2".to_vec(), at(200))])
            .unwrap();
        assert_eq!(s.len(), 3);
    }
    let s = DurableReplay::open(&path).unwrap();
    assert_eq!(s.len(), 3);
    assert!(s.seen(b"d:1", at(100)) && s.seen(b"NB:1", at(50)) && s.seen(b"d:2", at(200)));
    assert!(!s.seen(b"d:1", at(101)), "its own expiry");
    assert!(s.seen(b"d:2", at(150)));
    assert!(!s.seen(b"d:3", at(0)));
}

#[test]
fn records_written_as_integer_seconds_still_read() {
    // The table as earlier versions wrote it: the key and its expiry in seconds since the epoch.
    let path = tmp("seconds");
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&[u8], u64> = redb::TableDefinition::new("replay_v1");
            let mut t = w.open_table(table).unwrap();
            t.insert(b"d:old".as_slice(), 1_000).unwrap();
            t.insert(b"d:far".as_slice(), u64::MAX).unwrap();
        }
        w.commit().unwrap();
    }
    let mut s = DurableReplay::open(&path).unwrap();
    assert_eq!(s.len(), 2);
    assert!(s.seen(b"d:old", at(1_000)) && !s.seen(b"d:old", at(1_001)));
    assert!(s.seen(b"d:far", DateTime::<Utc>::MAX_UTC), "beyond chrono's range: kept");
    // A time with a fraction is stored rounded up: never forgotten early, also after reopening.
    let frac = at(2_000) + chrono::Duration::milliseconds(500);
    s.record(&[b"d:frac".to_vec()], frac).unwrap();
    s.purge(at(1_500)).unwrap();
    drop(s);
    let s = DurableReplay::open(&path).unwrap();
    assert_eq!(s.len(), 2, "d:old purged");
    assert!(s.seen(b"d:frac", frac) && s.seen(b"d:frac", at(2_001)) && !s.seen(b"d:frac", at(2_002)));
}
