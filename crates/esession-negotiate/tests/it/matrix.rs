//! The combination matrix: {3,4}-message x identities x {rsa, dsa} x {sha256, whirlpool} x
//! ciphers x groups x {SRS, OSS}: each completes and exchanges stanzas both ways.

use crate::*;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup, PrivateKey, SecretBytes};
use esession_forms::names::PubkeyMethod;

struct Case {
    mode: Mode,
    init: PubkeyMethod,
    resp: PubkeyMethod,
    dsa: bool,
    hash: HashAlg,
    cipher: CryptAlg,
    group: ModpGroup,
    srs: bool,
    oss: bool,
}

fn config(c: &Case, key: Option<PrivateKey>, peer_methods: (PubkeyMethod, PubkeyMethod)) -> Config {
    let mut cfg = match key {
        Some(k) => Config::with_identity(k),
        None => Config::default(),
    };
    cfg.provider = CryptoProvider {
        modp: vec![c.group],
        crypt_algs: vec![c.cipher.clone()],
        hash_algs: vec![c.hash.clone()],
        ..CryptoProvider::all()
    };
    // Weak groups and the cipher none are in the matrix: accepted because it asks for them.
    cfg.support.crypto = CryptoProvider::all();
    cfg.init_pubkey = vec![peer_methods.0];
    cfg.resp_pubkey = vec![peer_methods.1];
    if c.oss {
        cfg.oss = Some(SecretBytes::from_slice(b"correct horse battery staple"));
    }
    cfg
}

fn run(c: &Case) {
    let (rsa_a, rsa_b, dsa_a, dsa_b) = keys();
    let (ka, kb) = if c.dsa { (dsa_a, dsa_b) } else { (rsa_a, rsa_b) };
    let needs_a = c.init != PubkeyMethod::None;
    let needs_b = c.resp != PubkeyMethod::None;
    let (pa, pb) = (ka.public_key(), kb.public_key());
    let alice_cfg = config(c, needs_a.then_some(ka), (c.init.clone(), c.resp.clone()));
    let mut bob_cfg = config(c, needs_b.then_some(kb), (c.init.clone(), c.resp.clone()));
    bob_cfg.support.init_pubkey = vec![c.init.clone()];
    let (alice_cfg, bob_cfg) = (Arc::new(alice_cfg), Arc::new(bob_cfg));
    let mut a = Side::new(1);
    let mut b = Side::new(2);
    // Each side trusts the other's key for its JID.
    a.trust.trust(&bare(BOB), pb);
    b.trust.trust(&bare(ALICE), pa);
    if c.srs {
        // A first session leaves a retained secret on both sides.
        negotiate(c.mode, alice_cfg.clone(), bob_cfg.clone(), &mut a, &mut b, no_tamper());
        assert!(
            a.established.is_some() && b.established.is_some(),
            "first session {:?} {} {} dsa={}: {:?} {:?}",
            c.mode,
            c.init,
            c.resp,
            c.dsa,
            a.rejected,
            b.rejected
        );
        a.established = None;
        b.established = None;
    }
    negotiate(c.mode, alice_cfg, bob_cfg, &mut a, &mut b, no_tamper());
    let desc = format!(
        "{:?} {} {} dsa={} {} {} modp{} srs={} oss={}",
        c.mode, c.init, c.resp, c.dsa, c.hash, c.cipher, c.group, c.srs, c.oss
    );
    assert!(a.rejected.is_none(), "{desc}: alice {:?}", a.rejected);
    assert!(b.rejected.is_none(), "{desc}: bob {:?}", b.rejected);
    let (ea, eb) = (a.established.as_ref().expect(&desc), b.established.as_ref().expect(&desc));
    assert_eq!(ea.k().expose_secret(), eb.k().expose_secret(), "{desc}");
    assert_eq!(ea.sas(), eb.sas(), "{desc}");
    assert_eq!(ea.sas().is_some(), c.mode == Mode::Four, "{desc}");
    if c.mode == Mode::Four {
        assert_eq!(ea.retained_secret_used(), c.srs, "{desc}");
        assert_eq!(eb.retained_secret_used(), c.srs, "{desc}");
    }
    assert_eq!(ea.peer_key().is_some(), needs_b, "{desc}");
    assert_eq!(eb.peer_key().is_some(), needs_a, "{desc}");
    exchange(&mut a, &mut b);
}

#[test]
fn combination_matrix() {
    let idents_4 = [PubkeyMethod::None, PubkeyMethod::Key, PubkeyMethod::Hash];
    let idents_3 = [PubkeyMethod::Key, PubkeyMethod::Hash];
    let mut n = 0;
    let small = [ModpGroup::G1, ModpGroup::G2, ModpGroup::G5];
    // Identities x modes x signature algorithms x hashes, on the small groups.
    for mode in [Mode::Three, Mode::Four] {
        let idents: &[PubkeyMethod] = if mode == Mode::Four { &idents_4 } else { &idents_3 };
        for init in idents {
            for resp in idents {
                for dsa in [false, true] {
                    if *init == PubkeyMethod::None && *resp == PubkeyMethod::None && dsa {
                        continue; // no key at all: the signature algorithm does not matter
                    }
                    for hash in [HashAlg::Sha256, HashAlg::Whirlpool] {
                        let srs = n % 3 == 1 && mode == Mode::Four;
                        let oss = n % 4 == 2;
                        run(&Case {
                            mode,
                            init: init.clone(),
                            resp: resp.clone(),
                            dsa,
                            hash,
                            cipher: CryptAlg::Aes128Ctr,
                            group: small[n % 3],
                            srs,
                            oss,
                        });
                        n += 1;
                    }
                }
            }
        }
    }
    // Every cipher, both modes, with and without SRS and OSS.
    for (i, cipher) in CryptAlg::SUPPORTED.iter().enumerate() {
        for mode in [Mode::Three, Mode::Four] {
            let (init, resp) = if mode == Mode::Four {
                (PubkeyMethod::None, PubkeyMethod::None)
            } else {
                (PubkeyMethod::Key, PubkeyMethod::Hash)
            };
            run(&Case {
                mode,
                init,
                resp,
                dsa: i % 2 == 1,
                hash: HashAlg::Sha256,
                cipher: cipher.clone(),
                group: ModpGroup::G1,
                srs: mode == Mode::Four && i % 2 == 0,
                oss: i % 3 == 0,
            });
            n += 1;
        }
    }
    // Every large group at least once.
    for (i, group) in [ModpGroup::G14, ModpGroup::G15, ModpGroup::G16, ModpGroup::G17, ModpGroup::G18]
        .into_iter()
        .enumerate()
    {
        let mode = if i % 2 == 0 { Mode::Four } else { Mode::Three };
        let (init, resp) = if mode == Mode::Four {
            (PubkeyMethod::None, PubkeyMethod::Key)
        } else {
            (PubkeyMethod::Key, PubkeyMethod::Key)
        };
        run(&Case {
            mode,
            init,
            resp,
            dsa: false,
            hash: HashAlg::Sha256,
            cipher: CryptAlg::Aes256Ctr,
            group,
            srs: false,
            oss: i == 4,
        });
        n += 1;
    }
    assert!(n >= 75, "{n} cases");
}

#[test]
fn gajim_profile_on_both_sides_and_never_mixed_with_xep() {
    use esession_crypto::Profile;
    for (pa, pb, works) in [
        (Profile::Gajim, Profile::Gajim, true),
        (Profile::Xep, Profile::Gajim, false),
        (Profile::Gajim, Profile::Xep, false),
    ] {
        let mk = |p: Profile| {
            let mut c = Config::new(p);
            c.provider = CryptoProvider {
                modp: vec![ModpGroup::G5],
                crypt_algs: vec![CryptAlg::Aes128Ctr],
                hash_algs: vec![HashAlg::Sha256],
                ..CryptoProvider::default()
            };
            // Group 5 is accepted by both profiles here, so only the profile differs.
            c.support.crypto = CryptoProvider::all();
            Arc::new(c)
        };
        let (mut a, mut b) = (Side::new(11), Side::new(12));
        negotiate(Mode::Four, mk(pa), mk(pb), &mut a, &mut b, no_tamper());
        let both = a.established.is_some() && b.established.is_some();
        assert_eq!(both, works, "{pa:?} vs {pb:?}: {:?} {:?}", a.rejected, b.rejected);
        if works {
            let (ea, eb) = (a.established.as_ref().unwrap(), b.established.as_ref().unwrap());
            assert_eq!(ea.sas(), eb.sas());
            // Gajim keeps C_A and C_B at or above 2^120 (its receiver MACs the 16-octet counter).
            assert!(
                ea.session().send_counter().unwrap() >= 1 << 120 && ea.session().recv_counter() >= 1 << 120
            );
            exchange(&mut a, &mut b);
        }
    }
}

/// A shaper that adds a field to one kind of form (the dialect's free choices).
struct AddField(FormKind, &'static str);

impl Shaper for AddField {
    fn shape(&mut self, kind: FormKind, mut x: Element) -> Element {
        if kind == self.0 {
            x.append_child(esession_forms::xml::parse(self.1).unwrap());
        }
        x
    }
}

/// Issue 17.3: 3-message in both roles in `Profile::Gajim`, with the deployed dialect: its
/// requests offer `none` among the identity methods (a real one is chosen whenever one is
/// offered, `none` only when nothing else is, and only in Gajim's dialect), and its responses
/// may answer `sas_algs` when the request offered it (in both profiles).
#[test]
fn three_message_in_the_gajim_dialect_both_roles() {
    use esession_crypto::Profile;
    let (ra, rb, _, _) = keys();
    let (pa, pb) = (ra.public_key(), rb.public_key());
    let mk = |p: Profile, key: PrivateKey, offer: Vec<PubkeyMethod>| {
        let mut c = Config::new(p).identified_by(key);
        c.provider = CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::for_profile(p) };
        c.init_pubkey = offer.clone();
        c.resp_pubkey = offer;
        Arc::new(c)
    };
    let dialect = vec![PubkeyMethod::None, PubkeyMethod::Key, PubkeyMethod::Hash];
    // Both roles in Gajim: the plain 3-message negotiation.
    for p in [Profile::Gajim, Profile::Xep] {
        let (mut a, mut b) = (Side::new(31), Side::new(32));
        a.trust.trust(&bare(BOB), pb.clone());
        b.trust.trust(&bare(ALICE), pa.clone());
        let (ra, rb, _, _) = keys();
        negotiate(
            Mode::Three,
            mk(p, ra, dialect.clone()),
            mk(p, rb, dialect.clone()),
            &mut a,
            &mut b,
            no_tamper(),
        );
        assert!(
            a.established.is_some() && b.established.is_some(),
            "{p:?}: {:?} {:?}",
            a.rejected,
            b.rejected
        );
        assert!(a.established.as_ref().unwrap().peer_key().is_some(), "{p:?}: a real identity was chosen");
        exchange(&mut a, &mut b);
    }
    // The dialect's request puts `none` first in a 3-message request (our initiator never
    // offers it there; a shaper plays the testsuite's initiator). Bob in Gajim takes `key`.
    let offering = |var: &str, methods: &[&str]| {
        let opts: String = methods.iter().map(|m| format!("<option><value>{m}</value></option>")).collect();
        format!("<field xmlns='jabber:x:data' type='list-single' var='{var}'>{opts}</field>")
    };
    // (profile, methods the request offers, negotiated?, with a key?)
    for (p, methods, works, keyed) in [
        (Profile::Gajim, &["none", "key"][..], true, true),
        (Profile::Xep, &["none", "key"][..], true, true),
        (Profile::Gajim, &["none"][..], true, false),
        (Profile::Xep, &["none"][..], false, false),
    ] {
        let (ra, rb, _, _) = keys();
        let (mut a, mut b) = (Side::new(33), Side::new(34));
        a.trust.trust(&bare(BOB), pb.clone());
        b.trust.trust(&bare(ALICE), pa.clone());
        let (init, resp) = (offering("init_pubkey", methods), offering("resp_pubkey", methods));
        let replace = move |x: Element| {
            let mut out = Element::bare(x.name(), x.ns());
            for ((ns, n), v) in x.attrs().iter() {
                out.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
            }
            for c in x.children() {
                match c.attr("var") {
                    Some("init_pubkey") => out.append_child(esession_forms::xml::parse(&init).unwrap()),
                    Some("resp_pubkey") => out.append_child(esession_forms::xml::parse(&resp).unwrap()),
                    _ => out.append_child(c.clone()),
                };
            }
            out
        };
        struct Replace<F: FnMut(Element) -> Element + Send>(F);
        impl<F: FnMut(Element) -> Element + Send> Shaper for Replace<F> {
            fn shape(&mut self, kind: FormKind, x: Element) -> Element {
                if kind == FormKind::Request { (self.0)(x) } else { x }
            }
        }
        let alice = Initiator::new(mk(p, ra, vec![PubkeyMethod::Key]), j(BOB), "thread-1")
            .with_shaper(Box::new(Replace(replace)));
        let bob = Responder::new(mk(p, rb, dialect.clone()), j(ALICE), "thread-1");
        run_parties(Mode::Three, alice, bob, &mut a, &mut b, no_tamper());
        let both = a.established.is_some() && b.established.is_some();
        assert_eq!(both, works, "{p:?} {methods:?}: {:?} {:?}", a.rejected, b.rejected);
        if works {
            assert_eq!(b.established.as_ref().unwrap().peer_key().is_some(), keyed, "{p:?} {methods:?}");
            assert_eq!(a.established.as_ref().unwrap().peer_key().is_some(), keyed, "{p:?} {methods:?}");
            exchange(&mut a, &mut b);
        } else {
            assert!(
                matches!(&b.rejected, Some(Error::PeerMisbehaved { fields, .. }) if fields.contains(&"init_pubkey".to_owned())),
                "{:?}",
                b.rejected
            );
        }
    }
    // A 3-message response that answers sas_algs, which the request offered: accepted.
    for p in [Profile::Gajim, Profile::Xep] {
        let (ra, rb, _, _) = keys();
        let (mut a, mut b) = (Side::new(35), Side::new(36));
        a.trust.trust(&bare(BOB), pb.clone());
        b.trust.trust(&bare(ALICE), pa.clone());
        let offer = "<field xmlns='jabber:x:data' type='list-single' var='sas_algs'><option><value>sas28x5</value></option></field>";
        let answer = "<field xmlns='jabber:x:data' var='sas_algs'><value>sas28x5</value></field>";
        let alice_shaper: Box<dyn Shaper> = if p == Profile::Xep {
            Box::new(AddField(FormKind::Request, offer))
        } else {
            Box::new(AddField(FormKind::Accept, "<field xmlns='jabber:x:data' var='x-none'/>"))
        };
        let alice =
            Initiator::new(mk(p, ra, vec![PubkeyMethod::Key]), j(BOB), "thread-1").with_shaper(alice_shaper);
        let bob = Responder::new(mk(p, rb, vec![PubkeyMethod::Key]), j(ALICE), "thread-1")
            .with_shaper(Box::new(AddField(FormKind::Response, answer)));
        run_parties(Mode::Three, alice, bob, &mut a, &mut b, no_tamper());
        assert!(
            a.established.is_some() && b.established.is_some(),
            "{p:?}: {:?} {:?}",
            a.rejected,
            b.rejected
        );
    }
}
