//! Integration tests of esession-negotiate: an in-memory `Pair` harness drives Alice and Bob.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod durable;
mod hostile;
mod lifecycle;
mod matrix;
mod parties;
mod rows116;
mod rows116_more;
mod security;
mod ssn;

use esession_crypto::PrivateKey;
use esession_crypto::testing::TestRng;
use esession_negotiate::*;
use esession_stanza::EncryptOptions;
use minidom::Element;
use std::sync::Arc;

/// A JID of the tests.
pub(crate) fn j(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

/// The bare JID of a JID of the tests.
pub(crate) fn bare(s: &str) -> BareJid {
    j(s).to_bare()
}

/// A time of the tests: `secs` seconds after the epoch.
pub(crate) fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, 0).unwrap()
}

pub(crate) const ALICE: &str = "alice@example.org/pda";
pub(crate) const BOB: &str = "bob@example.com/laptop";

/// One side's stores, outputs and fixed randomness.
pub(crate) struct Side {
    pub(crate) trust: MemoryTrust,
    pub(crate) retained: MemoryRetained,
    pub(crate) rng: TestRng,
    pub(crate) established: Option<Box<Established>>,
    pub(crate) rejected: Option<Error>,
    pub(crate) sas: Option<esession_crypto::Sas>,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) ssn: bool,
    pub(crate) received: Vec<Element>,
}

impl Side {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            trust: MemoryTrust::default(),
            retained: MemoryRetained::default(),
            rng: TestRng::new(seed),
            established: None,
            rejected: None,
            sas: None,
            alerts: Vec::new(),
            ssn: false,
            received: Vec::new(),
        }
    }
}

/// Which stanza of the negotiation: its index and sender.
pub(crate) type Tamper<'a> = Box<dyn FnMut(usize, bool, Element) -> Option<Element> + 'a>;

/// Runs one negotiation between `alice_cfg` and `bob_cfg`; `tamper` sees every stanza in flight
/// (index, from Alice?) and may change or drop it.
pub(crate) fn negotiate(
    mode: Mode,
    alice_cfg: Arc<Config>,
    bob_cfg: Arc<Config>,
    a: &mut Side,
    b: &mut Side,
    tamper: Tamper<'_>,
) {
    negotiate_with(mode, alice_cfg, bob_cfg, a, b, tamper, None, None);
}

/// [`negotiate`], with content piggybacked by Alice (3-message accept, optionally terminating)
/// and by Bob (4-message identity).
#[allow(clippy::too_many_arguments)]
pub(crate) fn negotiate_with(
    mode: Mode,
    alice_cfg: Arc<Config>,
    bob_cfg: Arc<Config>,
    a: &mut Side,
    b: &mut Side,
    tamper: Tamper<'_>,
    alice_content: Option<(Element, bool)>,
    bob_content: Option<Element>,
) {
    let mut alice = Initiator::new(alice_cfg, j(BOB), "thread-1");
    let mut bob = Responder::new(bob_cfg, j(ALICE), "thread-1");
    if let Some((c, t)) = alice_content {
        alice.piggyback(c, t);
    }
    if let Some(c) = bob_content {
        bob.piggyback(c);
    }
    run_parties(mode, alice, bob, a, b, tamper);
}

/// Runs a negotiation between parties built by the caller (with shapers, piggybacked content).
pub(crate) fn run_parties(
    mode: Mode,
    alice: Initiator,
    bob: Responder,
    a: &mut Side,
    b: &mut Side,
    tamper: Tamper<'_>,
) {
    run_parties_at(at(0), mode, alice, bob, a, b, tamper);
}

/// [`run_parties`] at time `now`.
pub(crate) fn run_parties_at(
    now: chrono::DateTime<chrono::Utc>,
    mode: Mode,
    mut alice: Initiator,
    mut bob: Responder,
    a: &mut Side,
    b: &mut Side,
    mut tamper: Tamper<'_>,
) {
    let mut ent = TestRng::new(a.rng_seed());
    alice.start(mode, &mut RngEntropy(&mut ent)).unwrap();
    drive(now, &mut alice, &mut bob, a, b, &mut tamper);
}

/// Relays the outputs of a started `alice` and of `bob` until neither has any.
pub(crate) fn drive(
    now: chrono::DateTime<chrono::Utc>,
    alice: &mut Initiator,
    bob: &mut Responder,
    a: &mut Side,
    b: &mut Side,
    tamper: &mut Tamper<'_>,
) {
    let mut n = 0usize;
    loop {
        let mut moved = false;
        while let Some(o) = alice.poll_output() {
            if let Some(s) = collect(o, a) {
                moved = true;
                n += 1;
                if let Some(s) = tamper(n - 1, true, s) {
                    let _ = bob.handle(
                        now,
                        &s,
                        &mut RngEntropy(&mut b.rng),
                        &mut Stores { trust: &mut b.trust, retained: &mut b.retained },
                    );
                }
            }
        }
        while let Some(o) = bob.poll_output() {
            if let Some(s) = collect(o, b) {
                moved = true;
                n += 1;
                if let Some(s) = tamper(n - 1, false, s) {
                    let _ = alice.handle(
                        now,
                        &s,
                        &mut RngEntropy(&mut a.rng),
                        &mut Stores { trust: &mut a.trust, retained: &mut a.retained },
                    );
                }
            }
        }
        if !moved {
            break;
        }
    }
}

impl Side {
    fn rng_seed(&mut self) -> u64 {
        use rand_core::Rng;
        self.rng.next_u64()
    }
}

/// Records non-Send outputs; returns stanzas to deliver.
fn collect(o: Output, side: &mut Side) -> Option<Element> {
    match o {
        Output::Send(s) => return Some(s),
        Output::SasReady(s) => side.sas = Some(s),
        Output::Established(e) => side.established = Some(e),
        Output::Rejected(e) => side.rejected = Some(e),
        Output::Alert(a) => side.alerts.push(a),
        Output::StanzaSession { .. } => side.ssn = true,
        Output::Received { content: e, .. } => side.received.push(e),
        _ => {}
    }
    None
}

pub(crate) fn no_tamper<'a>() -> Tamper<'a> {
    Box::new(|_, _, s| Some(s))
}

/// Messages both ways through the established sessions.
pub(crate) fn exchange(a: &mut Side, b: &mut Side) {
    let (Some(ea), Some(eb)) = (a.established.as_mut(), b.established.as_mut()) else {
        panic!("not established")
    };
    let mut r = TestRng::new(5);
    for (i, text) in ["Hello, Bob!", "Hi Alice", "ünïcødé"].iter().enumerate() {
        let msg = chat(text);
        let (from, to) = if i % 2 == 0 {
            (ea.session_mut(), eb.session_mut())
        } else {
            (eb.session_mut(), ea.session_mut())
        };
        let wire = from.encrypt(&msg, EncryptOptions::default(), &mut r).unwrap();
        let (clear, _) = to.decrypt(&wire).unwrap();
        assert_eq!(clear.get_child("body", "jabber:client").map(Element::text).as_deref(), Some(*text));
    }
}

pub(crate) fn chat(body: &str) -> Element {
    let mut m = Element::bare("message", "jabber:client");
    m.append_child(Element::builder("thread", "jabber:client").append("thread-1").build());
    m.append_child(Element::builder("body", "jabber:client").append(body).build());
    m
}

pub(crate) fn keys() -> (PrivateKey, PrivateKey, PrivateKey, PrivateKey) {
    let v: serde_json::Value = serde_json::from_str(include_str!("../vectors/identity-keys.json")).unwrap();
    let h = |a: &str, f: &str| {
        let s = v[a][f].as_str().unwrap();
        hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
    };
    let rsa = || PrivateKey::rsa_from_components(&h("rsa", "n"), &h("rsa", "e"), &h("rsa", "d")).unwrap();
    let dsa = || {
        PrivateKey::dsa_from_components(
            &h("dsa", "p"),
            &h("dsa", "q"),
            &h("dsa", "g"),
            &h("dsa", "y"),
            &h("dsa", "x"),
        )
        .unwrap()
    };
    (rsa(), rsa(), dsa(), dsa())
}

/// Small, fast choices (group 1 is weak: accepted because the tests ask for it).
pub(crate) fn small_cfg(mut c: Config) -> Config {
    c.support.crypto = esession_crypto::CryptoProvider::all();
    c.provider = esession_crypto::CryptoProvider {
        modp: vec![esession_crypto::ModpGroup::G1],
        crypt_algs: vec![esession_crypto::CryptAlg::Aes128Ctr],
        hash_algs: vec![esession_crypto::HashAlg::Sha256],
        ..c.provider
    };
    c
}

/// The `<x/>` of a stanza's ESession wrapper.
pub(crate) fn form_x(stanza: &Element) -> &Element {
    let w = esession_forms::esession::Wrapper::find(stanza).expect("an ESession wrapper");
    esession_forms::esession::Wrapper::unwrap(w).expect("one data form").1
}

/// The `<field/>` `var` of a stanza's form.
pub(crate) fn field<'a>(stanza: &'a Element, var: &str) -> Option<&'a Element> {
    form_x(stanza).children().find(|f| f.name() == "field" && f.attr("var") == Some(var))
}

/// The `<value/>`s of field `var` of a stanza's form.
pub(crate) fn values(stanza: &Element, var: &str) -> Option<Vec<String>> {
    field(stanza, var).map(|f| f.children().filter(|v| v.name() == "value").map(Element::text).collect())
}

/// The `<option/>` values of field `var` of a stanza's form.
pub(crate) fn options(stanza: &Element, var: &str) -> Option<Vec<String>> {
    field(stanza, var).map(|f| {
        f.children()
            .filter(|o| o.name() == "option")
            .flat_map(|o| o.children().filter(|v| v.name() == "value").map(Element::text))
            .collect()
    })
}

/// The `var`s of a stanza's form, in order.
pub(crate) fn vars(stanza: &Element) -> Vec<String> {
    form_x(stanza)
        .children()
        .filter(|f| f.name() == "field")
        .filter_map(|f| f.attr("var"))
        .map(str::to_owned)
        .collect()
}

/// A copy of `e` whose descendants `edit` may replace (Some(list): the element is replaced by
/// the list; None: kept and walked into).
pub(crate) fn rewrite(e: &Element, edit: &mut dyn FnMut(&Element) -> Option<Vec<Element>>) -> Element {
    let mut out = Element::bare(e.name(), e.ns());
    for ((ns, n), v) in e.attrs().iter() {
        out.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
    }
    for node in e.nodes() {
        match node {
            minidom::Node::Element(c) => match edit(c) {
                Some(list) => {
                    for r in list {
                        out.append_child(r);
                    }
                }
                None => {
                    out.append_child(rewrite(c, edit));
                }
            },
            minidom::Node::Text(t) => out.append_text_node(t.clone()),
        }
    }
    out
}

/// A data-form element of the tests (`jabber:x:data` namespace).
pub(crate) fn xml(s: &str) -> Element {
    esession_forms::xml::parse(s).unwrap()
}

/// `stanza` with field `var` replaced by `replacement` (a `<field/>` in `jabber:x:data`, or
/// nothing to remove it; appended at the end of the form when absent).
pub(crate) fn replace_field(stanza: &Element, var: &str, replacement: Option<&str>) -> Element {
    let mut found = false;
    let mut out = rewrite(stanza, &mut |c: &Element| {
        (c.name() == "field" && c.attr("var") == Some(var)).then(|| {
            found = true;
            replacement.map(xml).into_iter().collect()
        })
    });
    if !found && let Some(r) = replacement {
        out = rewrite(&out, &mut |c: &Element| {
            (c.name() == "x").then(|| {
                let mut x = c.clone();
                x.append_child(xml(r));
                vec![x]
            })
        });
    }
    out
}

/// `stanza` with the values of field `var` set to `values` (its other children and attributes
/// kept).
pub(crate) fn set_values(stanza: &Element, var: &str, values: &[&str]) -> Element {
    rewrite(stanza, &mut |c: &Element| {
        (c.name() == "field" && c.attr("var") == Some(var)).then(|| {
            let mut f = Element::bare("field", c.ns());
            for ((ns, n), v) in c.attrs().iter() {
                f.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
            }
            for v in values {
                f.append_child(Element::builder("value", c.ns()).append(*v).build());
            }
            for o in c.children().filter(|o| o.name() != "value") {
                f.append_child(o.clone());
            }
            vec![f]
        })
    })
}

/// `stanza` with the options of field `var` set to `opts`.
pub(crate) fn set_options(stanza: &Element, var: &str, opts: &[&str]) -> Element {
    rewrite(stanza, &mut |c: &Element| {
        (c.name() == "field" && c.attr("var") == Some(var)).then(|| {
            let mut f = Element::bare("field", c.ns());
            for ((ns, n), v) in c.attrs().iter() {
                f.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
            }
            for v in c.children().filter(|v| v.name() == "value") {
                f.append_child(v.clone());
            }
            for o in opts {
                f.append_child(
                    Element::builder("option", c.ns())
                        .append(Element::builder("value", c.ns()).append(*o).build())
                        .build(),
                );
            }
            for r in c.children().filter(|r| r.name() == "required") {
                f.append_child(r.clone());
            }
            vec![f]
        })
    })
}

/// Something that emits outputs.
pub(crate) trait Party {
    fn next_output(&mut self) -> Option<Output>;
}

impl Party for Initiator {
    fn next_output(&mut self) -> Option<Output> {
        self.poll_output()
    }
}

impl Party for Responder {
    fn next_output(&mut self) -> Option<Output> {
        self.poll_output()
    }
}

/// Every pending output of a party.
pub(crate) fn drain(p: &mut dyn Party) -> Vec<Output> {
    std::iter::from_fn(|| p.next_output()).collect()
}

/// The stanzas among outputs.
pub(crate) fn sent(outs: &[Output]) -> Vec<Element> {
    outs.iter().filter_map(|o| if let Output::Send(s) = o { Some(s.clone()) } else { None }).collect()
}

/// `stanza` stamped with a `from`.
pub(crate) fn from(stanza: &Element, jid: &str) -> Element {
    let mut s = stanza.clone();
    s.set_attr(
        minidom::rxml::Namespace::NONE,
        esession_forms::xml::attr_name("from").unwrap(),
        jid.to_owned(),
    );
    s
}

/// Hands `stanza` to Bob with side `b`'s stores and randomness.
pub(crate) fn to_bob(bob: &mut Responder, b: &mut Side, stanza: &Element) -> Result<()> {
    bob.handle(
        at(0),
        stanza,
        &mut RngEntropy(&mut b.rng),
        &mut Stores { trust: &mut b.trust, retained: &mut b.retained },
    )
}

/// Hands `stanza` to Alice with side `a`'s stores and randomness.
pub(crate) fn to_alice(alice: &mut Initiator, a: &mut Side, stanza: &Element) -> Result<()> {
    alice.handle(
        at(0),
        stanza,
        &mut RngEntropy(&mut a.rng),
        &mut Stores { trust: &mut a.trust, retained: &mut a.retained },
    )
}

/// The condition and fields of an error stanza.
pub(crate) fn error_fields(stanza: &Element) -> (Option<String>, Vec<String>) {
    esession_negotiate::wire::error_of(stanza).expect("an error stanza")
}

/// A shaper applying `f` to the forms of one kind (a party's free choices, or a test playing
/// another implementation).
pub(crate) struct Shape<F: FnMut(Element) -> Element + Send>(pub(crate) FormKind, pub(crate) F);

impl<F: FnMut(Element) -> Element + Send> Shaper for Shape<F> {
    fn shape(&mut self, kind: FormKind, x: Element) -> Element {
        if kind == self.0 { (self.1)(x) } else { x }
    }
}

/// A shaper adding field `xml` (in `jabber:x:data`) to the forms of one kind.
pub(crate) fn adding(kind: FormKind, field: &'static str) -> Box<dyn Shaper> {
    Box::new(Shape(kind, move |mut x: Element| {
        x.append_child(esession_forms::xml::parse(field).unwrap());
        x
    }))
}

/// Runs `alice` and `bob` (built by the caller) and records every stanza: (from Alice?, stanza).
pub(crate) fn run_recorded(
    mode: Mode,
    alice: Initiator,
    bob: Responder,
    a: &mut Side,
    b: &mut Side,
) -> Vec<(bool, Element)> {
    let mut seen = Vec::new();
    run_parties(
        mode,
        alice,
        bob,
        a,
        b,
        Box::new(|_, from_alice, s: Element| {
            seen.push((from_alice, s.clone()));
            Some(s)
        }),
    );
    seen
}

/// A 3-message pair with identity keys, each trusting the other's.
pub(crate) fn keyed_pair() -> (Config, Config, Side, Side) {
    let (ra, rb, _, _) = keys();
    let (pa, pb) = (ra.public_key(), rb.public_key());
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    a.trust.trust(&bare(BOB), pb);
    b.trust.trust(&bare(ALICE), pa);
    (small_cfg(Config::with_identity(ra)), small_cfg(Config::with_identity(rb)), a, b)
}
