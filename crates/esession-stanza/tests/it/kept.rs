//! The receiving half kept across a restart (issue 21: an XEP-0187 offline session Alice
//! accepted): `Session::export_receiving` / `Session::import_receiving`.

use crate::rules::{p, recv, rekey, send};
use crate::{pair, params};
use esession_crypto::{CryptAlg, HashAlg};
use esession_forms::names::Compress;
use esession_stanza::{EncryptOptions, Error, Session};

/// A session made again from its kept octets receives exactly as the original would: the next
/// stanzas, a re-key by the peer (which needs our DH exponent) and the stanzas after it; it
/// never sends; a stanza it took already fails (the counter moved on).
#[test]
fn an_imported_session_receives_as_the_original_and_never_sends() {
    for p in [p(), params(CryptAlg::Aes256Ctr, HashAlg::Sha256)] {
        let (mut alice, mut bob) = pair(&p);
        let first = send(&mut bob, "one");
        assert_eq!(recv(&mut alice, &first).as_deref(), Some("one"));
        alice.receive_only();
        assert!(!alice.is_sending());
        let kept = alice.export_receiving().unwrap();
        let mut again = Session::import_receiving(kept.expose_secret()).unwrap();
        assert!(!again.is_sending());
        assert_eq!(again.recv_counter(), alice.recv_counter());
        assert_eq!(again.params(), alice.params());
        let two = send(&mut bob, "two");
        let re = rekey(&mut bob, Some("three, with a new key"), 7);
        let four = send(&mut bob, "four");
        for s in [&mut alice, &mut again] {
            assert_eq!(recv(s, &two).as_deref(), Some("two"));
            assert_eq!(recv(s, &re).as_deref(), Some("three, with a new key"));
            assert_eq!(recv(s, &four).as_deref(), Some("four"));
        }
        assert_eq!(again.recv_counter(), alice.recv_counter());
        // Kept again after the re-key: the new keys.
        let five = send(&mut bob, "five");
        let mut third = Session::import_receiving(again.export_receiving().unwrap().expose_secret()).unwrap();
        assert_eq!(recv(&mut third, &five).as_deref(), Some("five"));
        let refused =
            third.encrypt(&crate::chat("no"), EncryptOptions::default(), &mut crate::TestRng::new(1));
        assert_eq!(refused.unwrap_err(), Error::SessionClosed);
        // A copy of a stanza it took: the MAC fails at the new counter.
        assert!(third.decrypt(&five).is_err());
    }
}

/// Peer input never reaches this (the octets are the account's, sealed), but a damaged record
/// must not crash: every truncation and extension is refused.
#[test]
fn every_truncation_and_extension_of_kept_octets_is_refused() {
    let (mut alice, _) = pair(&p());
    alice.receive_only();
    let kept = alice.export_receiving().unwrap();
    let b = kept.expose_secret();
    for n in 0..b.len() {
        assert!(Session::import_receiving(&b[..n]).is_err(), "truncated at {n}");
    }
    let mut longer = b.to_vec();
    longer.push(0);
    assert!(Session::import_receiving(&longer).is_err());
    let mut other = b.to_vec();
    other[0] = 9;
    assert!(matches!(Session::import_receiving(&other), Err(Error::Snapshot(_))));
}

/// A closed session has nothing to keep; a compression context is not kept; a session that
/// still sends is not exported (its keys are in use, and the copy's counter would go stale):
/// only after `receive_only`, which wipes the send keys.
#[test]
fn closed_compressed_and_sending_sessions_are_not_kept() {
    let (mut alice, _) = pair(&p());
    alice.close();
    assert_eq!(alice.export_receiving().unwrap_err(), Error::SessionClosed);
    let mut z = p();
    z.compress = Compress::Zlib;
    let (mut alice, _) = pair(&z);
    alice.receive_only();
    assert!(matches!(alice.export_receiving(), Err(Error::Snapshot(_))));
    let (mut alice, _) = pair(&p());
    assert!(alice.is_sending());
    assert!(matches!(alice.export_receiving(), Err(Error::Snapshot(_))));
    alice.receive_only();
    assert!(alice.export_receiving().is_ok());
    let refused = alice.encrypt(&crate::chat("no"), EncryptOptions::default(), &mut crate::TestRng::new(1));
    assert_eq!(refused.unwrap_err(), Error::SessionClosed);
}
