//! Integration tests of esession-stanza.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bigint;
mod edges;
mod gajim;
mod kept;
mod props;
mod publish;
mod rekey;
mod rows116_more;
mod rules;

use esession_crypto::kdf::{SessionKeys, cipher_key};
use esession_crypto::{CryptAlg, DhKeyPair, HashAlg, ModpGroup, Profile};
use esession_forms::names::{Compress, StanzaType};
use esession_stanza::{DEFAULT_MAX_BLOCKS, DirectionKeys, Params, Session};
use minidom::Element;

pub(crate) fn params(cipher: CryptAlg, hash: HashAlg) -> Params {
    Params {
        profile: Profile::Xep,
        hash,
        cipher,
        compress: Compress::None,
        stanzas: vec![StanzaType::Message, StanzaType::Presence, StanzaType::Iq],
        rekey_freq: 1,
        group: ModpGroup::G1,
        max_blocks: DEFAULT_MAX_BLOCKS,
    }
}

pub(crate) use esession_crypto::testing::TestRng;

/// Alice and Bob as a negotiation leaves them: a real agreement, the six keys, C_B = C_A xor 2^127.
pub(crate) fn pair(p: &Params) -> (Session, Session) {
    pair_seeded(p, 0)
}

/// [`pair`], deterministic in `seed`.
pub(crate) fn pair_seeded(p: &Params, seed: u64) -> (Session, Session) {
    let (a, b, _) = pair_with_keys(p, seed);
    (a, b)
}

/// Alice's sending keys as raw material, to forge stanzas a misbehaving peer would send, and
/// Bob's first MAC key, to recognise it when it is published.
pub(crate) struct RawSend {
    pub(crate) cipher: esession_crypto::CtrCipher,
    pub(crate) km: esession_crypto::SecretBytes,
    pub(crate) counter: u128,
    pub(crate) bob_km: esession_crypto::SecretBytes,
}

/// [`pair_seeded`] plus Alice's raw sending keys.
pub(crate) fn pair_with_keys(p: &Params, seed: u64) -> (Session, Session, RawSend) {
    let mut r = TestRng::new(seed);
    let x = DhKeyPair::generate(p.group, &mut r).unwrap();
    let y = DhKeyPair::generate(p.group, &mut r).unwrap();
    let (e, d) = (x.public().to_vec(), y.public().to_vec());
    let k = x.agree_reusable(&d).unwrap().session_key(&p.hash).unwrap();
    let keys = SessionKeys::derive(&p.hash, &k).unwrap();
    let ca: u128 = 0x1d7f_bdbd_708b_555b_a6f5_a738_c342_5e80;
    let cb = ca ^ (1 << 127);
    let dir = |kc: &esession_crypto::SecretBytes, km: &esession_crypto::SecretBytes, c| DirectionKeys {
        cipher_key: cipher_key(p.profile, &p.cipher, kc).unwrap(),
        mac_key: km.duplicate(),
        counter: c,
    };
    let (ia, ra) = (&keys.initiator, &keys.responder);
    let raw = RawSend {
        cipher: esession_crypto::CtrCipher::new(
            &p.cipher,
            p.profile,
            &cipher_key(p.profile, &p.cipher, &ia.kc).unwrap(),
        )
        .unwrap(),
        km: ia.km.duplicate(),
        counter: ca,
        bob_km: ra.km.duplicate(),
    };
    let alice = Session::new(p.clone(), dir(&ia.kc, &ia.km, ca), dir(&ra.kc, &ra.km, cb), x, d).unwrap();
    let bob = Session::new(p.clone(), dir(&ra.kc, &ra.km, cb), dir(&ia.kc, &ia.km, ca), y, e).unwrap();
    (alice, bob, raw)
}

pub(crate) fn chat(body: &str) -> Element {
    let mut m = esession_forms::xml::parse(
        "<message xmlns='jabber:client' to='bob@example.com/laptop' type='chat'><thread>ffd7076498744578d10edabfe7f4a866</thread></message>",
    )
    .unwrap();
    m.append_child(Element::builder("body", "jabber:client").append(body).build());
    m.append_child(Element::bare("active", "http://jabber.org/protocol/chatstates"));
    m
}

pub(crate) fn body(e: &Element) -> Option<String> {
    e.get_child("body", "jabber:client").map(Element::text)
}
