//! The durable replay store: an entry recorded before a kill -9 is still rejected after restart.

use esession_offline::replay::ReplayStore;
use esession_offline::replay::durable::DurableReplay;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

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
        s.record(&[format!("d:{i}").into_bytes(), format!("NB:{i}").into_bytes()], u64::MAX).unwrap();
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
            assert!(s.seen(format!("d:{i}").as_bytes(), 0), "d:{i} lost");
            assert!(s.seen(format!("NB:{i}").as_bytes(), 0), "NB:{i} lost");
        }
    }
    // Bounded growth: entries expire with their options.
    let path = tmp("expiry");
    let mut s = DurableReplay::open(&path).unwrap();
    s.record(&[b"old".to_vec()], 100).unwrap();
    s.record(&[b"new".to_vec()], 1000).unwrap();
    s.purge(500).unwrap();
    drop(s);
    let s = DurableReplay::open(&path).unwrap();
    assert_eq!(s.len(), 1);
    assert!(s.seen(b"new", 500) && !s.seen(b"old", 0));
}

#[test]
fn a_batch_is_durable_as_a_whole() {
    // record_all: one transaction; after reopening, every entry is there with its own expiry.
    let path = tmp("batch");
    {
        let mut s = DurableReplay::open(&path).unwrap();
        s.record_all(&[(b"d:1".to_vec(), 100), (b"NB:1".to_vec(), 100), (b"d:2".to_vec(), 200)]).unwrap();
        assert_eq!(s.len(), 3);
    }
    let s = DurableReplay::open(&path).unwrap();
    assert_eq!(s.len(), 3);
    assert!(s.seen(b"d:1", 100) && s.seen(b"NB:1", 50) && s.seen(b"d:2", 200));
    assert!(!s.seen(b"d:1", 101), "its own expiry");
    assert!(s.seen(b"d:2", 150));
    assert!(!s.seen(b"d:3", 0));
}
