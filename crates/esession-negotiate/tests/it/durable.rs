//! The durable (redb) store: everything survives a reopen and a kill -9 right after a call
//! returns; secrets are sealed.

use crate::*;
use esession_crypto::testing::TestRng;
use esession_crypto::{SealingKey, SecretBytes};
use esession_negotiate::durable::DurableStore;
use esession_negotiate::{StoreError, StoreErrorKind};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn key() -> SealingKey {
    SealingKey::from_bytes(SecretBytes::new(vec![0x42; 32])).unwrap()
}

fn open(path: &std::path::Path) -> DurableStore {
    DurableStore::open(path, key(), Box::new(TestRng::new(1))).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("esession-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("store.redb")
}

#[test]
fn everything_survives_a_reopen_and_secrets_are_sealed() {
    let path = tmp("reopen");
    let (ra, _, da, _) = keys();
    {
        let mut s = open(&path);
        s.trust(&bare("alice@example.org"), ra.public_key()).unwrap();
        s.set_petname(&ra.public_key(), "Alice (laptop)").unwrap();
        s.associate(&bare("alice@example.org"), da.public_key()).unwrap();
        s.confirm_sas(&bare("alice@example.org")).unwrap();
        s.replace(&bare("alice@example.org"), None, SecretBytes::from_slice(b"retained one"), at(10), false)
            .unwrap();
        s.replace(&bare("bob@example.com"), None, SecretBytes::from_slice(b"retained two"), at(11), false)
            .unwrap();
        // Using the first one replaces it.
        let old = SecretBytes::from_slice(b"retained one");
        s.replace(
            &bare("alice@example.org"),
            Some(&old),
            SecretBytes::from_slice(b"retained three"),
            at(12),
            true,
        )
        .unwrap();
        s.mark_verified(&bare("bob@example.com")).unwrap();
    }
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(12).any(|w| w == b"retained two"), "secrets are sealed on disk");
    let s = open(&path);
    let alice: Vec<Vec<u8>> = RetainedStore::for_jid(&s, &bare("alice@example.org"), at(100))
        .iter()
        .map(|r| r.secret.expose_secret().to_vec())
        .collect();
    assert_eq!(alice, vec![b"retained three".to_vec()], "the used secret was destroyed");
    assert!(RetainedStore::for_jid(&s, &bare("bob@example.com"), at(100))[0].chain_verified);
    assert_eq!(RetainedStore::all(&s, at(100)).len(), 2);
    let rec = s.record(&ra.public_key()).unwrap();
    assert!(rec.verified);
    assert_eq!(rec.petname.as_deref(), Some("Alice (laptop)"));
    assert!(s.trusts(&bare("alice@example.org"), &ra.public_key()));
    assert!(!s.trusts(&bare("mallory@example.net"), &ra.public_key()), "trust is per JID");
    assert_eq!(TrustStore::for_jid(&s, &bare("alice@example.org")).len(), 2);
    assert!(s.sas_confirmed(&bare("alice@example.org")));
    drop(s);
    // The wrong key cannot open the secrets.
    let wrong = SealingKey::from_bytes(SecretBytes::new(vec![7; 32])).unwrap();
    let e = DurableStore::open(&path, wrong, Box::new(TestRng::new(2))).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{e}");
}

/// Issue 19: a key taken on first use was recorded as verified, and shown so. It is pinned: a
/// state of its own, kept across a reopen, that only the user's verification turns into
/// verified; pinning a verified key leaves it verified.
#[test]
fn a_key_pinned_on_first_use_stays_pinned_not_verified_until_the_user_verifies_it() {
    use esession_negotiate::KeyState;
    let path = tmp("pinned");
    // Two distinct keys: RSA for Alice, DSA for Bob.
    let (ra, _, rb, _) = keys();
    let alice = bare("alice@example.org");
    let bob = bare("bob@example.com");
    {
        let mut s = open(&path);
        s.pin(&alice, ra.public_key()).unwrap();
        s.verify(&bob, rb.public_key()).unwrap();
        // A verified key pinned again (a first use seen later) stays verified.
        s.pin(&bob, rb.public_key()).unwrap();
        let rec = s.record(&ra.public_key()).unwrap();
        assert_eq!((rec.state(), rec.verified, rec.pinned), (KeyState::Pinned, false, true));
        assert!(s.trusts(&alice, &ra.public_key()), "a pinned key is accepted as before");
    }
    let mut s = open(&path);
    assert_eq!(s.record(&ra.public_key()).unwrap().state(), KeyState::Pinned, "kept durably");
    assert_eq!(s.record(&rb.public_key()).unwrap().state(), KeyState::Verified);
    // The user compares and verifies it: verified, no longer pinned, durably.
    s.verify(&alice, ra.public_key()).unwrap();
    drop(s);
    let s = open(&path);
    let rec = s.record(&ra.public_key()).unwrap();
    assert_eq!((rec.state(), rec.verified, rec.pinned), (KeyState::Verified, true, false));
    // The same in memory.
    let mut m = esession_negotiate::MemoryTrust::default();
    m.pin(&alice, ra.public_key()).unwrap();
    assert_eq!(m.record(&ra.public_key()).unwrap().state(), KeyState::Pinned);
    m.verify(&alice, ra.public_key()).unwrap();
    assert_eq!(m.record(&ra.public_key()).unwrap().state(), KeyState::Verified);
}

#[test]
fn store_errors_are_typed_and_keep_their_cause() {
    use std::error::Error as _;
    let path = tmp("locked");
    let s = open(&path);
    // A second handle on a database that is open: refused as held, with redb's error as cause.
    let e = DurableStore::open(&path, key(), Box::new(TestRng::new(3))).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Locked, "{e}");
    let cause = e.source().and_then(|c| c.downcast_ref::<redb::Error>());
    assert!(matches!(cause, Some(redb::Error::DatabaseAlreadyOpen)), "{cause:?}");
    assert!(e.to_string().starts_with("store: "), "{e}");
    drop(s);
    // What the call names is not there.
    let (ra, ..) = keys();
    let mut s = open(&path);
    let e = s.set_petname(&ra.public_key(), "Alice").unwrap_err();
    assert_eq!((e.kind(), e.source().is_none()), (StoreErrorKind::NotFound, true));
    // An I/O failure is I/O, its cause the io::Error.
    let e = StoreError::database(std::io::Error::other("disk full"));
    assert_eq!(e.kind(), StoreErrorKind::Io);
    assert_eq!(e.to_string(), "store: the database failed: I/O error: disk full");
    let io = e.source().and_then(|c| c.downcast_ref::<redb::Error>());
    assert!(matches!(io, Some(redb::Error::Io(_))), "{io:?}");
}

#[test]
fn a_retained_secret_carries_across_a_restart() {
    let (pa, pb) = (tmp("alice"), tmp("bob"));
    let cfg = Arc::new(Config::default());
    for round in 0..2 {
        let (mut sa, mut sb) = (open(&pa), open(&pb));
        let mut alice = Initiator::new(cfg.clone(), j(BOB), "t");
        let mut bob = Responder::new(cfg.clone(), j(ALICE), "t");
        let mut r = TestRng::new(round + 10);
        alice.start(Mode::Four, &mut RngEntropy(&mut r)).unwrap();
        let mut est = (None, None);
        for _ in 0..4 {
            while let Some(o) = alice.poll_output() {
                match o {
                    Output::Send(s) => {
                        // none identities: the trust store is not consulted, a scratch one will do.
                        let stores = &mut Stores { trust: &mut MemoryTrust::default(), retained: &mut sb };
                        let _ = bob.handle(at(0), &s, &mut RngEntropy(&mut r), stores);
                    }
                    Output::Established(e) => est.0 = Some(e),
                    _ => {}
                }
            }
            while let Some(o) = bob.poll_output() {
                match o {
                    Output::Send(s) => {
                        let stores = &mut Stores { trust: &mut MemoryTrust::default(), retained: &mut sa };
                        let _ = alice.handle(at(0), &s, &mut RngEntropy(&mut r), stores);
                    }
                    Output::Established(e) => est.1 = Some(e),
                    _ => {}
                }
            }
        }
        let (a, b) = (est.0.unwrap(), est.1.unwrap());
        assert_eq!(a.retained_secret_used(), round == 1, "round {round}");
        assert_eq!(b.retained_secret_used(), round == 1);
        assert_eq!(RetainedStore::all(&sa, at(0)).len(), 1, "the old secret is replaced, not accumulated");
    }
}

/// The child of the crash test: records entries and reports each one after the call returned.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("ESESSION_CRASH_CHILD") else { return };
    let mut s = open(std::path::Path::new(&path));
    for i in 0u64.. {
        s.replace(
            &bare(&format!("peer{i}@example.org")),
            None,
            SecretBytes::new(i.to_be_bytes().to_vec()),
            at(i64::try_from(i).unwrap()),
            false,
        )
        .unwrap();
        println!("recorded {i}");
    }
}

#[test]
fn a_kill_9_right_after_a_call_returns_loses_nothing() {
    let exe = std::env::current_exe().unwrap();
    for round in 0..4u64 {
        let path = tmp(&format!("crash{round}"));
        let mut child = Command::new(&exe)
            .args(["--exact", "durable::crash_child", "--nocapture", "--test-threads=1"])
            .env("ESESSION_CRASH_CHILD", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it record a varying number of entries, then SIGKILL it mid-flight.
        let target = 3 + round * 7;
        let mut confirmed = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("recorded ") {
                confirmed.push(n.parse::<u64>().unwrap());
                if confirmed.len() as u64 >= target {
                    break;
                }
            }
        }
        child.kill().unwrap();
        let _ = child.wait();
        assert!(!confirmed.is_empty());
        let s = open(&path);
        for i in &confirmed {
            let jid = bare(&format!("peer{i}@example.org"));
            let got = RetainedStore::for_jid(&s, &jid, at(1 << 40));
            assert_eq!(got.len(), 1, "entry {i} was confirmed before the kill but is lost");
            assert_eq!(got[0].secret.expose_secret(), i.to_be_bytes());
        }
    }
}

/// A distinct (syntactically valid) RSA public key per `i`.
fn nth_key(i: u32) -> esession_crypto::PublicKey {
    let mut n = vec![0xC5u8; 128];
    n[120..124].copy_from_slice(&i.to_be_bytes());
    n[127] |= 1;
    esession_crypto::PublicKey::rsa(&n, &[1, 0, 1]).unwrap()
}

/// Peers that complete negotiations under ever new JIDs must not grow the stores without bound:
/// unverified keys, JIDs per key and retained secrets are capped, in memory and durably, and
/// what the user verified or named is never evicted.
#[test]
fn stores_stay_bounded_whatever_peers_do() {
    use esession_negotiate::{MAX_JIDS_PER_KEY, MAX_RETAINED, MAX_UNVERIFIED_KEYS, MemoryTrust};
    let path = tmp("bounded");
    let mut durable = open(&path);
    let mut memory = MemoryTrust::default();
    let mut retained = MemoryRetained::default();
    durable.trust(&bare("friend@example.org"), nth_key(0)).unwrap();
    memory.trust(&bare("friend@example.org"), nth_key(0));
    for i in 1..=(MAX_UNVERIFIED_KEYS as u32 + 10) {
        let jid = bare(&format!("u{i}@evil.example"));
        durable.associate(&jid, nth_key(i)).unwrap();
        memory.associate(&jid, nth_key(i)).unwrap();
    }
    for (name, store) in [("durable", &durable as &dyn TrustStore), ("memory", &memory)] {
        let unverified = store.records().iter().filter(|r| !r.verified).count();
        assert_eq!(unverified, MAX_UNVERIFIED_KEYS, "{name}");
        assert!(store.trusts(&bare("friend@example.org"), &nth_key(0)), "{name}: verified keys stay");
        assert!(store.record(&nth_key(1)).is_none(), "{name}: the oldest unverified key went");
        assert!(store.record(&nth_key(MAX_UNVERIFIED_KEYS as u32 + 10)).is_some(), "{name}");
    }
    drop(durable);
    let reopened = open(&path);
    assert_eq!(reopened.records().len(), MAX_UNVERIFIED_KEYS + 1, "the eviction is durable");
    // One key presented by ever new JIDs.
    let mut durable = reopened;
    for i in 0..(MAX_JIDS_PER_KEY + 5) {
        let jid = bare(&format!("alias{i}@evil.example"));
        durable.associate(&jid, nth_key(7777)).unwrap();
        memory.associate(&jid, nth_key(7777)).unwrap();
    }
    assert_eq!(durable.record(&nth_key(7777)).unwrap().jids.len(), MAX_JIDS_PER_KEY);
    assert_eq!(memory.record(&nth_key(7777)).unwrap().jids.len(), MAX_JIDS_PER_KEY);
    // Retained secrets of ever new JIDs.
    for i in 0..(MAX_RETAINED + 3) {
        let jid = bare(&format!("r{i}@evil.example"));
        let s = SecretBytes::new(format!("secret {i}").into_bytes());
        retained.replace(&jid, None, s, at(i as i64), false).unwrap();
    }
    assert_eq!(retained.all(at(0)).len(), MAX_RETAINED);
    assert!(retained.for_jid(&bare("r0@evil.example"), at(0)).is_empty(), "the oldest went");
}

/// The durable store bounds its retained secrets like the memory store, durably.
#[test]
fn durable_retained_secrets_are_bounded() {
    use esession_negotiate::MAX_RETAINED;
    let path = tmp("retained-bound");
    {
        let mut s = open(&path);
        s.replace(&bare("friend@example.org"), None, SecretBytes::from_slice(b"verified"), at(0), true)
            .unwrap();
        for i in 0..(MAX_RETAINED + 2) {
            let jid = bare(&format!("r{i}@evil.example"));
            s.replace(&jid, None, SecretBytes::new(format!("s{i}").into_bytes()), at(i as i64 + 1), false)
                .unwrap();
        }
        assert_eq!(s.all(at(0)).len(), MAX_RETAINED);
    }
    let s = open(&path);
    assert_eq!(s.all(at(0)).len(), MAX_RETAINED, "bounded on disk too");
    assert_eq!(
        RetainedStore::for_jid(&s, &bare("friend@example.org"), at(0)).len(),
        1,
        "a verified chain stays"
    );
    assert!(RetainedStore::for_jid(&s, &bare("r0@evil.example"), at(0)).is_empty());
}

/// Rows as versions before JID normalization wrote them: the JID as given, in clear, and
/// bound into the seal of a retained secret (`esession retained v1`, row id, JID).
mod old_rows {
    use super::key;
    use esession_crypto::testing::TestRng;
    use esession_crypto::{KeyComponents, PublicKey};
    use redb::TableDefinition;

    pub(super) const RETAINED: TableDefinition<u64, &[u8]> = TableDefinition::new("retained_v1");
    pub(super) const TRUST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trust_v1");
    pub(super) const SAS: TableDefinition<&str, u8> = TableDefinition::new("sas_confirmed_v1");

    fn put_str(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
        out.extend_from_slice(s);
    }

    /// The table key of a trust row.
    pub(super) fn key_id(k: &PublicKey) -> Vec<u8> {
        let mut out = Vec::new();
        match k.components() {
            KeyComponents::Rsa { n, e } => {
                out.push(1);
                put_str(&mut out, &n);
                put_str(&mut out, &e);
            }
            KeyComponents::Dsa { p, q, g, y } => {
                out.push(2);
                for f in [p, q, g, y] {
                    put_str(&mut out, &f);
                }
            }
        }
        out
    }

    /// A trust row: version 1, verified, petname, JIDs.
    pub(super) fn trust(verified: bool, petname: &str, jids: &[&str]) -> Vec<u8> {
        let mut v = vec![1, u8::from(verified)];
        put_str(&mut v, petname.as_bytes());
        v.extend_from_slice(&u16::try_from(jids.len()).unwrap().to_be_bytes());
        for j in jids {
            put_str(&mut v, j.as_bytes());
        }
        v
    }

    /// A retained-secret row: version 1, creation (seconds), verified, JID, sealed secret.
    pub(super) fn retained(id: u64, created: u64, verified: bool, jid: &str, secret: &[u8]) -> Vec<u8> {
        let mut aad = b"esession retained v1".to_vec();
        aad.extend_from_slice(&id.to_be_bytes());
        aad.extend_from_slice(jid.as_bytes());
        let sealed = key().seal(&mut TestRng::new(id), &aad, secret).unwrap();
        let mut v = vec![1];
        v.extend_from_slice(&created.to_be_bytes());
        v.push(u8::from(verified));
        put_str(&mut v, jid.as_bytes());
        v.extend_from_slice(&sealed);
        v
    }
}

/// A store written before JIDs were normalized (`Bob@Example.COM` as the peer gave it) is
/// normalized when it opens: trust, a petname, a SAS confirmation and a retained secret kept
/// under `Bob@Example.COM` apply to `bob@example.com`; two spellings of one JID on a key
/// become one; the file is rewritten, so no row keeps the old spelling and the re-sealed
/// secret opens under the normalized JID on the next open.
#[test]
fn records_under_unnormalized_jids_are_migrated_on_open() {
    use redb::{ReadableDatabase, ReadableTable};
    const OLD: &str = "Bob@Example.COM";
    let path = tmp("migrate");
    let (ra, _, da, _) = keys();
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(old_rows::RETAINED).unwrap();
            t.insert(1, old_rows::retained(1, 50, true, OLD, b"kept since before").as_slice()).unwrap();
            let mut t = w.open_table(old_rows::TRUST).unwrap();
            let id = old_rows::key_id(&ra.public_key());
            t.insert(id.as_slice(), old_rows::trust(true, "Bob (laptop)", &[OLD]).as_slice()).unwrap();
            let id = old_rows::key_id(&da.public_key());
            let row = old_rows::trust(false, "", &[OLD, "bob@example.com"]);
            t.insert(id.as_slice(), row.as_slice()).unwrap();
            w.open_table(old_rows::SAS).unwrap().insert(OLD, 1u8).unwrap();
        }
        w.commit().unwrap();
    }
    let bob = bare("bob@example.com");
    for round in 0..2 {
        let s = open(&path);
        let kept = RetainedStore::for_jid(&s, &bob, at(100));
        assert_eq!(kept.len(), 1, "round {round}: the retained secret applies to {bob}");
        assert_eq!(kept[0].secret.expose_secret(), b"kept since before");
        assert!(kept[0].chain_verified && kept[0].created == at(50), "round {round}");
        assert!(s.trusts(&bob, &ra.public_key()), "round {round}: the trust applies to {bob}");
        let rec = s.record(&ra.public_key()).unwrap();
        assert_eq!(rec.petname.as_deref(), Some("Bob (laptop)"));
        assert_eq!(s.record(&da.public_key()).unwrap().jids, vec![bob.clone()], "one JID, merged");
        assert_eq!(TrustStore::for_jid(&s, &bob).len(), 2, "round {round}");
        assert!(s.sas_confirmed(&bob), "round {round}: the SAS confirmation applies to {bob}");
        drop(s);
        // Rewritten in the file: the old spelling is gone from every table.
        let db = redb::Database::open(&path).unwrap();
        let r = db.begin_read().unwrap();
        let mut rows: Vec<Vec<u8>> = Vec::new();
        for row in r.open_table(old_rows::RETAINED).unwrap().iter().unwrap() {
            rows.push(row.unwrap().1.value().to_vec());
        }
        for row in r.open_table(old_rows::TRUST).unwrap().iter().unwrap() {
            rows.push(row.unwrap().1.value().to_vec());
        }
        for row in r.open_table(old_rows::SAS).unwrap().iter().unwrap() {
            rows.push(row.unwrap().0.value().as_bytes().to_vec());
        }
        assert_eq!(rows.len(), 4, "round {round}: one row each, none added");
        assert!(
            !rows.iter().any(|row| row.windows(OLD.len()).any(|w| w == OLD.as_bytes())),
            "round {round}: a row keeps {OLD}"
        );
    }
}

/// What the mutation run of durable.rs left alive (docs/conformance.md, "Mutation testing"):
/// `untrust` removes exactly one association, durably, and refuses one that does not exist; a
/// key without a petname reads back without one; nothing is confirmed before it is; the store's
/// `Debug` shows nothing it holds.
#[test]
fn untrust_removes_one_association_durably() {
    let path = tmp("untrust");
    let (ra, ..) = keys();
    let (alice, carol) = (bare("alice@example.org"), bare("carol@example.net"));
    {
        let mut s = open(&path);
        assert_eq!(format!("{s:?}"), "DurableStore");
        assert!(!s.sas_confirmed(&alice), "nothing is confirmed yet");
        s.trust(&alice, ra.public_key()).unwrap();
        s.trust(&carol, ra.public_key()).unwrap();
        let e = s.untrust(&bare("bob@example.com"), &ra.public_key()).unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::NotFound, "{e}");
        s.untrust(&alice, &ra.public_key()).unwrap();
        assert!(!s.trusts(&alice, &ra.public_key()));
        assert!(s.trusts(&carol, &ra.public_key()));
    }
    let s = open(&path);
    assert!(!s.trusts(&alice, &ra.public_key()), "untrusted durably");
    assert!(s.trusts(&carol, &ra.public_key()), "the other association kept");
    let rec = s.record(&ra.public_key()).unwrap();
    assert_eq!(rec.jids, vec![carol]);
    assert_eq!(rec.petname, None, "no petname reads back as none");
    assert!(!s.sas_confirmed(&alice));
}

/// `set_retained_max_age`: a retained secret older than the limit is ignored.
#[test]
fn retained_secrets_older_than_the_limit_are_ignored() {
    let path = tmp("max-age");
    let alice = bare("alice@example.org");
    let mut s = open(&path);
    s.replace(&alice, None, SecretBytes::from_slice(b"kept"), at(10), false).unwrap();
    assert_eq!(RetainedStore::for_jid(&s, &alice, at(10_000)).len(), 1, "no limit by default");
    s.set_retained_max_age(100);
    assert_eq!(RetainedStore::for_jid(&s, &alice, at(100)).len(), 1);
    assert!(RetainedStore::for_jid(&s, &alice, at(10_000)).is_empty(), "older than 100 s");
}

/// The migration of unnormalized JIDs rewrites each table that needs it, also when the others
/// do not: here only the SAS confirmation is kept under `Bob@Example.COM`.
#[test]
fn a_migration_of_one_table_alone_is_written() {
    use redb::{ReadableDatabase, ReadableTable};
    let path = tmp("migrate-one");
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(old_rows::SAS).unwrap().insert("Bob@Example.COM", 1u8).unwrap();
        w.commit().unwrap();
    }
    let s = open(&path);
    assert!(s.sas_confirmed(&bare("bob@example.com")));
    drop(s);
    let db = redb::Database::open(&path).unwrap();
    let r = db.begin_read().unwrap();
    let keys: Vec<String> = r
        .open_table(old_rows::SAS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|row| row.unwrap().0.value().to_owned())
        .collect();
    assert_eq!(keys, ["bob@example.com"]);
}

/// Pinning on first use is bounded as an association is: a key that already has
/// `MAX_JIDS_PER_KEY` JIDs is not pinned for one more (a peer growing one record without bound,
/// one new JID at a time), durably or in memory.
#[test]
fn pinning_on_first_use_is_bounded_per_key() {
    let path = tmp("pin-bound");
    let key = nth_key(7);
    let jid = |i: usize| bare(&format!("u{i}@example.net"));
    let mut s = open(&path);
    let mut m = esession_negotiate::MemoryTrust::default();
    for i in 0..MAX_JIDS_PER_KEY {
        s.pin_first_use(&jid(i), key.clone()).unwrap();
        m.pin_first_use(&jid(i), key.clone());
    }
    let extra = jid(MAX_JIDS_PER_KEY);
    assert!(s.pin_first_use(&extra, key.clone()).is_err());
    m.pin_first_use(&extra, key.clone());
    assert_eq!(s.record(&key).unwrap().jids.len(), MAX_JIDS_PER_KEY);
    assert_eq!(m.record(&key).unwrap().jids.len(), MAX_JIDS_PER_KEY);
    assert!(!s.trusts(&extra, &key) && !m.trusts(&extra, &key));
    drop(s);
    assert_eq!(open(&path).record(&key).unwrap().jids.len(), MAX_JIDS_PER_KEY, "durably");
}

/// Hostile review L4: a trust row's state octet that this version does not know (a damaged
/// file, or a newer esession) is refused with words, never read as "seen" (a downgrade of a key
/// the user verified) or as another state; so is a retained secret's verified flag.
#[test]
fn an_unknown_trust_state_is_refused_not_read_as_another() {
    let (ra, ..) = keys();
    for (name, state) in [("state3", 3u8), ("state255", 255)] {
        let path = tmp(name);
        {
            let db = redb::Database::create(&path).unwrap();
            let w = db.begin_write().unwrap();
            {
                let mut row = old_rows::trust(false, "", &["bob@example.com"]);
                row[1] = state;
                let id = old_rows::key_id(&ra.public_key());
                w.open_table(old_rows::TRUST).unwrap().insert(id.as_slice(), row.as_slice()).unwrap();
            }
            w.commit().unwrap();
        }
        let e = DurableStore::open(&path, key(), Box::new(TestRng::new(1))).expect_err("refused");
        assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{e}");
        assert!(
            e.to_string().contains("unknown trust state") && e.to_string().contains("newer esession"),
            "{e}"
        );
    }
    // The three known states read back as written.
    let path = tmp("states");
    let known = [(nth_key(1), 0u8), (nth_key(2), 1), (nth_key(3), 2)];
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(old_rows::TRUST).unwrap();
            for (k, state) in &known {
                let mut row = old_rows::trust(false, "", &["bob@example.com"]);
                row[1] = *state;
                t.insert(old_rows::key_id(k).as_slice(), row.as_slice()).unwrap();
            }
        }
        w.commit().unwrap();
    }
    let s = open(&path);
    let states: Vec<_> = known.iter().map(|(k, _)| s.record(k).unwrap().state()).collect();
    use esession_negotiate::KeyState;
    assert_eq!(states, [KeyState::Unverified, KeyState::Verified, KeyState::Pinned]);
    drop(s);
    // A retained secret's verified flag other than 0 or 1.
    let path = tmp("retained-flag");
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut row = old_rows::retained(1, 50, true, "bob@example.com", b"kept");
            row[9] = 2;
            w.open_table(old_rows::RETAINED).unwrap().insert(1, row.as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let e = DurableStore::open(&path, key(), Box::new(TestRng::new(1))).expect_err("refused");
    assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("newer esession"), "{e}");
}
