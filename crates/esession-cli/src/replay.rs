//! Step 3 of `vectors check`: receive-side replay. Each party runs the same code a live session
//! uses, with its secrets fixed (scripted [`Entropy`]) and its own sent forms taken as recorded
//! ([`Shaper`]: layout, nonces and decoys are the sender's free choices), and processes every
//! stanza the peer sent, in order: the negotiation, then the XEP-0200 traffic.

use esession_crypto::{DhKeyPair, ModpGroup, PrivateKey, Profile, PublicKey, SecretBytes, SignAlg};
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Request, Wrapper};
use esession_negotiate::{
    Config, Entropy, Established, FormKind, Initiator, MemoryRetained, MemoryTrust, Mode, Output, Responder,
    RetainedStore, Shaper, Stores, bare,
};
use esession_stanza::SealOptions;
use minidom::Element;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

/// A recorded stanza.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) seq: u64,
    pub(crate) alice: bool,
    pub(crate) kind: String,
    pub(crate) xml: String,
    /// For files without a transcript: the index of the `xep0200` entry this stanza is.
    pub(crate) entry: Option<usize>,
}

/// The recorded stanzas of a file, in order: its transcript, or the negotiation stanzas followed
/// by the XEP-0200 wires.
pub(crate) fn recorded(v: &Value) -> Vec<Recorded> {
    if let Some(t) = v.get("transcript").and_then(Value::as_array) {
        return t
            .iter()
            .filter_map(|e| {
                let from = e.get("from")?.as_str()?;
                let kind = e.get("kind")?.as_str()?;
                // A PEP items result carries Alice's options to Bob: it counts as hers.
                let alice = from == "alice" || kind == "pep-items";
                Some(Recorded {
                    seq: e.get("seq")?.as_u64()?,
                    alice,
                    kind: kind.to_owned(),
                    xml: e.get("xml")?.as_str()?.to_owned(),
                    entry: None,
                })
                .filter(|_| from == "alice" || from == "bob" || kind == "pep-items")
            })
            .collect();
    }
    let mut out = Vec::new();
    for s in v.get("negotiation_stanzas").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(from), Some(xml)) =
            (s.get("from").and_then(Value::as_str), s.get("xml").and_then(Value::as_str))
        {
            out.push(Recorded {
                seq: out.len() as u64,
                alice: from == "alice",
                kind: "negotiation".into(),
                xml: xml.into(),
                entry: None,
            });
        }
    }
    for (i, e) in v.get("xep0200").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let wire = e.get("wire").or_else(|| e.pointer("/send/wire")).and_then(Value::as_str);
        if let (Some(from), Some(xml)) = (e.get("from").and_then(Value::as_str), wire) {
            out.push(Recorded {
                seq: out.len() as u64,
                alice: from == "alice",
                kind: "xep0200".into(),
                xml: xml.into(),
                entry: Some(i),
            });
        }
    }
    out
}

pub(crate) fn hex(v: Option<&Value>) -> Option<Vec<u8>> {
    let s = v?.as_str()?;
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() };
    hex::decode(s).ok()
}

/// What a replayed party reached.
pub(crate) enum Reached {
    /// Established, with what it computed.
    Established {
        sas: Option<String>,
        k: Vec<u8>,
        bodies: Vec<(u64, Option<String>)>,
        sent_ok: Vec<(u64, bool)>,
    },
    /// It refused the stanza `seq`: the check and the condition it answered with ("silent").
    Rejected { seq: u64, check: String, condition: String },
    /// It neither established nor refused.
    Incomplete(String),
}

pub(crate) struct Scripted {
    pub(crate) nonce: Vec<u8>,
    pub(crate) counter: u128,
    pub(crate) dh: Vec<(ModpGroup, Vec<u8>)>,
    pub(crate) rng: getrandom::rand_core::UnwrapErr<getrandom::SysRng>,
}

impl Entropy for Scripted {
    fn nonce(&mut self) -> Vec<u8> {
        self.nonce.clone()
    }
    fn dh(&mut self, group: ModpGroup) -> esession_crypto::Result<DhKeyPair> {
        let x = self
            .dh
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, x)| x.clone())
            .ok_or(esession_crypto::Error::Rng)?;
        DhKeyPair::from_exponent(group, &x)
    }
    fn counter(&mut self, _profile: Profile) -> u128 {
        self.counter
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        vec![0; len]
    }
    fn rng(&mut self) -> &mut dyn rand_core::CryptoRng {
        &mut self.rng
    }
}

struct Recording(VecDeque<Element>);

impl Shaper for Recording {
    fn shape(&mut self, _kind: FormKind, proposed: Element) -> Element {
        self.0.pop_front().unwrap_or(proposed)
    }
}

pub(crate) fn form_of(xml: &str) -> Option<Element> {
    let s = esession_forms::xml::parse(xml).ok()?;
    let w = Wrapper::find(&s)?;
    Wrapper::unwrap(w).ok().map(|(_, x)| x.clone())
}

pub(crate) fn private_key(v: &Value, who: &str, alg: Option<&SignAlg>) -> Option<PrivateKey> {
    let keys = v.pointer(&format!("/inputs/{who}/config/keys"))?;
    let h = |k: &str, f: &str| hex(keys.get(k).and_then(|x| x.get(f)));
    match alg? {
        SignAlg::RsaSha256 => {
            PrivateKey::rsa_from_components(&h("rsa", "n")?, &h("rsa", "e")?, &h("rsa", "d")?).ok()
        }
        SignAlg::DsaSha256 => PrivateKey::dsa_from_components(
            &h("dsa", "p")?,
            &h("dsa", "q")?,
            &h("dsa", "g")?,
            &h("dsa", "y")?,
            &h("dsa", "x")?,
        )
        .ok(),
        _ => None,
    }
}

pub(crate) fn trusted(v: &Value, who: &str) -> Vec<PublicKey> {
    let Some(list) = v.pointer(&format!("/inputs/{who}/config/trusted")).and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|k| {
            if let (Some(n), Some(e)) = (hex(k.get("n")), hex(k.get("e"))) {
                return PublicKey::rsa(&n, &e).ok();
            }
            PublicKey::dsa(&hex(k.get("p"))?, &hex(k.get("q"))?, &hex(k.get("g"))?, &hex(k.get("y"))?).ok()
        })
        .collect()
}

/// Replays one party over `stanzas`.
pub(crate) fn replay(v: &Value, alice: bool, stanzas: &[Recorded]) -> Result<Reached, String> {
    let values = v.get("values").ok_or("no values")?;
    let profile: Profile =
        v.get("profile").and_then(Value::as_str).unwrap_or("xep").parse().map_err(|_| "profile")?;
    let mode = if values.get("mode").and_then(Value::as_u64) == Some(3) { Mode::Three } else { Mode::Four };
    let who = if alice { "alice" } else { "bob" };
    let peer_who = if alice { "bob" } else { "alice" };
    // The JIDs, from Alice's request.
    let first = stanzas.iter().find(|s| s.alice && s.kind == "negotiation").ok_or("no request recorded")?;
    let req_stanza = esession_forms::xml::parse(&first.xml).map_err(|e| e.to_string())?;
    let alice_jid = req_stanza.attr("from").unwrap_or("alice@example.org/pda").to_owned();
    let bob_jid = req_stanza.attr("to").unwrap_or("bob@example.com/laptop").to_owned();
    let request = form_of(&first.xml)
        .and_then(|x| DataForm::parse(&x).ok())
        .and_then(|f| Request::parse(&f).ok())
        .ok_or("the recorded request does not parse")?;
    let sign_alg: Option<SignAlg> =
        values.get("sign_alg").and_then(Value::as_str).and_then(|s| s.parse().ok());
    let mut cfg = match private_key(v, who, sign_alg.as_ref()) {
        Some(k) => Config::with_identity(k),
        None => Config::default(),
    };
    cfg.profile = profile;
    // The recorded parties support everything (the vector format's DEFAULT_SUPPORT): the
    // replay must accept what they chose, weak choices included.
    cfg.provider = esession_crypto::CryptoProvider::all();
    cfg.support.crypto = esession_crypto::CryptoProvider::all();
    cfg.provider.modp = request.offers.modp.clone();
    cfg.init_pubkey = request.init_pubkey.clone();
    cfg.resp_pubkey = request.resp_pubkey.clone();
    cfg.support.init_pubkey = request.init_pubkey.clone();
    if let Some(oss) = hex(values.get("OSS")).filter(|o| !o.is_empty()) {
        cfg.oss = Some(SecretBytes::new(oss));
    }
    let record = v.get(format!("{who}_record")).cloned().unwrap_or(Value::Null);
    let pick = |k: &str| hex(record.get(k)).or_else(|| hex(values.get(k)));
    let mut dh = Vec::new();
    if alice {
        for g in &request.offers.modp {
            if let Some(x) = hex(record.get(format!("x_modp{g}"))) {
                dh.push((*g, x));
            }
        }
        if let (Some(g), Some(x)) = (values.get("modp_group").and_then(Value::as_u64), pick("x")) {
            dh.push((ModpGroup::from_number(g as u32), x));
        }
    } else if let (Some(g), Some(y)) = (values.get("modp_group").and_then(Value::as_u64), pick("y")) {
        dh.push((ModpGroup::from_number(g as u32), y));
    }
    let counter =
        values.get("CA").and_then(Value::as_str).and_then(|c| u128::from_str_radix(c, 16).ok()).unwrap_or(0);
    let mut entropy = Scripted {
        nonce: pick(if alice { "NA" } else { "NB" })
            .ok_or_else(|| format!("the vector records no {}", if alice { "NA" } else { "NB" }))?,
        counter,
        dh,
        rng: getrandom::rand_core::UnwrapErr(getrandom::SysRng),
    };
    let own_forms: VecDeque<Element> = stanzas
        .iter()
        .filter(|s| s.alice == alice && s.kind == "negotiation")
        .filter_map(|s| form_of(&s.xml))
        .collect();
    let mut trust = MemoryTrust::default();
    let peer_jid = if alice { &bob_jid } else { &alice_jid };
    for k in trusted(v, who) {
        trust.trust(bare(peer_jid), k);
    }
    let mut retained = MemoryRetained::default();
    if let Some(srs) = hex(values.get("SRS")).filter(|s| !s.is_empty()) {
        retained.replace(bare(peer_jid), None, SecretBytes::new(srs), 0, false).map_err(|e| e.to_string())?;
    }
    let _ = peer_who;
    let cfg = Arc::new(cfg);
    let mut party: Party = if alice {
        let mut a = Initiator::new(cfg, &bob_jid, "replay").with_shaper(Box::new(Recording(own_forms)));
        a.start(mode, &mut entropy).map_err(|e| format!("start: {e}"))?;
        Party::Alice(a)
    } else {
        Party::Bob(Responder::new(cfg, &alice_jid, "replay").with_shaper(Box::new(Recording(own_forms))))
    };
    let mut established: Option<Box<Established>> = None;
    let mut sent: VecDeque<Element> = VecDeque::new();
    let mut sent_ok = Vec::new();
    let mut bodies = Vec::new();
    let mut rekeys = rekey_exponents(v, alice);
    for s in stanzas {
        drain(&mut party, &mut established, &mut sent, profile)?;
        let stanza = esession_forms::xml::parse(&s.xml).map_err(|e| format!("stanza {}: {e}", s.seq))?;
        if s.alice == alice {
            match (s.kind.as_str(), established.as_mut()) {
                // Our own negotiation stanza: the one we produced must carry the recorded
                // identity and mac (everything else was taken from the recording).
                ("negotiation", _) => {
                    if let Some(ours) = sent.pop_front() {
                        sent_ok.push((s.seq, same_form(&ours, &stanza)));
                    }
                }
                ("xep0200", Some(est)) => {
                    sent_ok.push((s.seq, reseal_own(v, s, &stanza, est, &mut rekeys)?));
                }
                _ => {}
            }
            continue;
        }
        match established.as_mut() {
            None => {
                let mut tr = &mut trust;
                let mut rt = &mut retained;
                let r = match &mut party {
                    Party::Alice(a) => {
                        a.handle(0, &stanza, &mut entropy, &mut Stores { trust: tr, retained: rt })
                    }
                    Party::Bob(b) => {
                        b.handle(0, &stanza, &mut entropy, &mut Stores { trust: tr, retained: rt })
                    }
                };
                let _ = (&mut tr, &mut rt);
                if let Err(e) = r {
                    let (check, condition) = describe(&e, &drain_errors(&mut party));
                    return Ok(Reached::Rejected { seq: s.seq, check, condition });
                }
            }
            Some(est) => match est.session.decrypt(&stanza) {
                Ok((clear, _)) => {
                    bodies.push((s.seq, clear.children().find(|c| c.name() == "body").map(Element::text)))
                }
                Err(e) => {
                    let condition = e.condition().unwrap_or("silent").to_owned();
                    return Ok(Reached::Rejected { seq: s.seq, check: stanza_check(&e).into(), condition });
                }
            },
        }
    }
    drain(&mut party, &mut established, &mut sent, profile)?;
    match established {
        Some(e) => Ok(Reached::Established {
            sas: e.sas.as_ref().map(ToString::to_string),
            k: e.k.expose_secret().to_vec(),
            bodies,
            sent_ok,
        }),
        None => Ok(Reached::Incomplete("the negotiation did not complete".into())),
    }
}

/// Re-seals our own recorded XEP-0200 stanza to keep the sending state in step; whether the MAC
/// we computed is the recorded one.
pub(crate) fn reseal_own(
    v: &Value,
    s: &Recorded,
    stanza: &Element,
    est: &mut Established,
    rekeys: &mut VecDeque<(ModpGroup, Vec<u8>)>,
) -> Result<bool, String> {
    let (m, key) = own_content(v, s, stanza);
    let rekey = match key {
        true => rekeys
            .pop_front()
            .map(|(g, x)| DhKeyPair::from_exponent(g, &x))
            .transpose()
            .map_err(|e| e.to_string())?,
        false => None,
    };
    let publish_old = stanza.children().any(|c| c.name() == "c" && c.children().any(|o| o.name() == "old"));
    let sealed = est
        .session
        .seal(m.as_deref(), SealOptions { rekey, publish_old })
        .map_err(|e| format!("seal {}: {e}", s.seq))?;
    Ok(recorded_mac(stanza).as_deref() == Some(sealed.mac.as_slice()))
}

/// The `<mac/>` octets of the `<c/>` in a stanza.
pub(crate) fn recorded_mac(stanza: &Element) -> Option<Vec<u8>> {
    stanza
        .children()
        .find(|c| c.name() == "c")
        .and_then(|c| c.children().find(|m| m.name() == "mac"))
        .and_then(|m| esession_crypto::mpi::b64_decode(&m.text()).ok())
}

/// The vector format's check name for a XEP-0200 receive failure.
pub(crate) fn stanza_check(e: &esession_stanza::Error) -> &'static str {
    use esession_stanza::{Error as E, TerminationCause as T};
    match e {
        E::Terminated(T::Xml) => "xep0200-xml",
        E::Terminated(T::New) => "xep0200-new",
        E::Terminated(T::RekeyRange) => "rekey-range",
        _ => "xep0200-mac",
    }
}

enum Party {
    Alice(Initiator),
    Bob(Responder),
}

fn drain(
    party: &mut Party,
    est: &mut Option<Box<Established>>,
    sent: &mut VecDeque<Element>,
    _p: Profile,
) -> Result<(), String> {
    loop {
        let o = match party {
            Party::Alice(a) => a.poll_output(),
            Party::Bob(b) => b.poll_output(),
        };
        match o {
            None => return Ok(()),
            Some(Output::Send(s)) => sent.push_back(s),
            Some(Output::Established(e)) => *est = Some(e),
            Some(Output::Rejected(e)) => return Err(format!("rejected: {e}")),
            Some(_) => {}
        }
    }
}

/// The error stanza a party sent when it refused, if any.
fn drain_errors(party: &mut Party) -> Vec<Element> {
    let mut out = Vec::new();
    loop {
        let o = match party {
            Party::Alice(a) => a.poll_output(),
            Party::Bob(b) => b.poll_output(),
        };
        match o {
            None => return out,
            Some(Output::Send(s)) => out.push(s),
            Some(_) => {}
        }
    }
}

fn describe(e: &esession_negotiate::Error, sent: &[Element]) -> (String, String) {
    let condition = sent
        .iter()
        .find_map(|s| esession_negotiate::wire::error_of(s).and_then(|(c, _)| c))
        .unwrap_or_else(|| "silent".into());
    let check = match e {
        esession_negotiate::Error::PeerMisbehaved { check, .. } => check.as_str().to_owned(),
        other => format!("other: {other}"),
    };
    (check, condition)
}

/// Whether two stanzas carry the same form (as normalized content).
pub(crate) fn same_form(a: &Element, b: &Element) -> bool {
    let f = |s: &Element| {
        Wrapper::find(s)
            .and_then(|w| Wrapper::unwrap(w).ok())
            .and_then(|(_, x)| esession_forms::normalize::form_content(Profile::Xep, x, &[]).ok())
    };
    f(a).is_some() && f(a) == f(b)
}

/// The recorded content m of our own XEP-0200 stanza `seq`, and whether it carried `<key/>`.
fn own_content(v: &Value, rec: &Recorded, stanza: &Element) -> (Option<Vec<u8>>, bool) {
    let seq = rec.seq;
    let key = stanza.children().any(|c| c.name() == "c" && c.children().any(|k| k.name() == "key"));
    let mut entries: Vec<&Value> =
        v.get("xep0200").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    for k in ["terminate", "ack"] {
        if let Some(e) = v.pointer(&format!("/termination/{k}")).filter(|e| e.is_object()) {
            entries.push(e);
        }
    }
    let entry = match rec.entry {
        Some(i) => entries.get(i).copied(),
        None => entries.into_iter().find(|e| e.get("seq").and_then(Value::as_u64) == Some(seq)),
    };
    let m = entry.and_then(|e| e.pointer("/send/m")).and_then(|m| hex(Some(m))).filter(|m| !m.is_empty());
    (m, key)
}

/// The exponents of the re-keys this party initiates, in order.
pub(crate) fn rekey_exponents(v: &Value, alice: bool) -> VecDeque<(ModpGroup, Vec<u8>)> {
    let g =
        ModpGroup::from_number(v.pointer("/values/modp_group").and_then(Value::as_u64).unwrap_or(0) as u32);
    v.get("rekey")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("initiator").and_then(Value::as_str) == Some(if alice { "alice" } else { "bob" }))
        .filter_map(|r| hex(r.get("x")).map(|x| (g, x)))
        .collect()
}
