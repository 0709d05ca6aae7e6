//! `<c/>` parsing and decryption of arbitrary input with fixed keys: the first byte selects the
//! profile and whether the input is a whole stanza; nothing may panic, and nothing but a
//! verified stanza may come out (with fixed keys, a forged MAC is the fuzzer's only way in).
//!
//! Then the same input as a hostile stanza in an engine's live session: Alice and Bob (no
//! identity keys) negotiate through the relay (`esession_fuzz::pair`), Bob sends "one", the input
//! reaches Alice as from Bob (a `<c/>` or any other child inside a message; in their session's
//! thread when it has none, or with bit 8 of the first byte), then Bob sends "two". Invariants: no panic; the input is never delivered as a protected message; "two"
//! is delivered, exactly, while the session stands on both sides, and else a new negotiation
//! succeeds and carries a message.
#![no_main]

use esession_crypto::{CryptAlg, DhKeyPair, HashAlg, ModpGroup, Profile, SecretBytes};
use esession_forms::names::{Compress, StanzaType};
use esession_fuzz::{ALICE, BOB, bare, bodies, pair, renegotiates};
use esession_negotiate::Mode;
use esession_stanza::{DirectionKeys, Encrypted, Params, Session};
use esession_xmpp::Event;
use libfuzzer_sys::fuzz_target;
use minidom::Element;

fn session(profile: Profile, compress: Compress) -> Option<Session> {
    let params = Params {
        profile,
        hash: HashAlg::Sha256,
        cipher: CryptAlg::Aes128Ctr,
        compress,
        stanzas: vec![StanzaType::Message, StanzaType::Iq, StanzaType::Presence],
        rekey_freq: 1,
        group: ModpGroup::G1,
        max_blocks: esession_stanza::DEFAULT_MAX_BLOCKS,
    };
    let mut x = vec![0x9au8; 32];
    x[0] = 0xc1;
    let own = DhKeyPair::from_exponent(ModpGroup::G1, &x).ok()?;
    let peer = own.public().to_vec();
    let key = if profile == Profile::Gajim { 32 } else { 16 };
    let dir = |k: u8| DirectionKeys {
        cipher_key: SecretBytes::new(vec![k; key]),
        mac_key: SecretBytes::new(vec![k; 32]),
        counter: 7,
    };
    Session::new(params, dir(1), dir(2), own, peer).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let profile = if mode & 1 == 0 { Profile::Xep } else { Profile::Gajim };
    let compress = if mode & 4 == 0 { Compress::None } else { Compress::Zlib };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Ok(e) = esession_forms::xml::parse(text) else { return };
    let _ = esession_stanza::content::find_c(&e);
    if let Ok(c) = Encrypted::parse(profile, &e) {
        let back = Encrypted::parse(profile, &c.to_element()).expect("our own <c/> parses");
        assert_eq!(back.data, c.data);
        if let Some(mut s) = session(profile, compress.clone()) {
            // A forged MAC never verifies: the keys are fixed and unknown to the input.
            assert!(s.open(&c).is_err());
        }
    }
    if let Some(mut s) = session(profile, compress) {
        let r = s.decrypt(&e);
        assert!(r.is_err(), "an unverified stanza was delivered");
    }
    through_engines(profile, mode & 8 != 0, e);
});

/// The input `junk` reaches Alice as from Bob, between two messages of their session.
fn through_engines(profile: Profile, in_thread: bool, mut junk: Element) {
    let mut r = pair(profile, false, 1);
    if r.start(0, BOB, Mode::Four).is_err() {
        return;
    }
    r.drive();
    let Some(thread) = r.engine(0).session(&bare(BOB)).map(|s| s.thread().to_owned()) else {
        panic!("no session: {:?}", r.events(0));
    };
    assert!(r.chat(1, "alice@example.org", "one").is_ok());
    r.drive();
    assert_eq!(bodies(&r.take_events(0)), ["one"]);
    if !matches!(junk.name(), "message" | "presence" | "iq") {
        // A child (a `<c/>`, say): in a message of the session's thread.
        let mut m = Element::builder("message", "jabber:client").append(junk).build();
        esession_fuzz::set(&mut m, "type", "chat");
        junk = m;
    }
    esession_fuzz::set(&mut junk, "to", ALICE);
    if in_thread || junk.get_child("thread", "jabber:client").is_none() {
        match junk.get_child_mut("thread", "jabber:client") {
            Some(t) => *t = Element::builder("thread", "jabber:client").append(thread.as_str()).build(),
            None => {
                junk.append_child(
                    Element::builder("thread", "jabber:client").append(thread.as_str()).build(),
                );
            }
        }
    }
    r.inject(1, junk);
    r.drive();
    let told = r.take_events(0);
    assert!(
        !told.iter().any(|e| matches!(e, Event::Message { .. })),
        "the input was delivered as protected: {told:?}"
    );
    let standing = |r: &mut esession_xmpp::relay::Relay, i: usize, peer: &str| {
        r.engine(i).session(&bare(peer)).is_some_and(|s| s.thread() == thread)
    };
    if standing(&mut r, 0, BOB) && standing(&mut r, 1, ALICE) {
        assert!(r.chat(1, "alice@example.org", "two").is_ok());
        r.drive();
        assert_eq!(bodies(&r.take_events(0)), ["two"], "a genuine message after the input");
    } else {
        renegotiates(&mut r);
    }
}
