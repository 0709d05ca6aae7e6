//! Step 3 for XEP-0187 vectors: each party runs the `esession-offline` code a live client uses,
//! with its secrets fixed.
//!
//! * Bob verifies the options of the PEP items result (his clock, his trusted keys), starts the
//!   session with his recorded N_B, C_A and y and the recorded content (its `Created` header
//!   added again by the sender's code), and must produce the recorded start: form, identity,
//!   MAC and `<c/>`. His later stanzas are re-sealed and compared.
//! * Alice keeps what her recorded publish says (N_A, one x per group, expiry, offers), returns
//!   at her clock and handles what was queued as the engine does: the start through
//!   `esession_offline::receive::accept` (expiry, nonce, group, replay store, identity,
//!   signature, content), later stanzas through the session. Every refusal is silent, and a
//!   termination is not acknowledged (XEP-0187 §5).

use crate::format::{Recorded, Vector, Who, hex, parse_xml};
use crate::party::{
    self, CLIENT_NS, Outcome, Own, Rejection, body_line, c_of, compare_c, config, content_of, form_of,
    identity_key, reseal_own, same_form, stanza_check,
};
use crate::report::Verdict;
use chrono::{DateTime, Utc};
use esession_crypto::DhKeyPair;
use esession_forms::dataform::{DataForm, parse_bool};
use esession_forms::esession::OfflineOptions;
use esession_negotiate::{BareJid, Established, Jid, MemoryTrust, Phase, Received};
use esession_offline::publish::Secrets;
use esession_offline::replay::{MemoryReplay, ReplayStore};
use esession_offline::{Audience, Error as OffError, parse_xep0082, pep, receive, send};
use minidom::Element;
use serde_json::Value;

/// A party's clock: its last `clock` operation in the script, else its `now`.
pub(crate) fn clock(v: &Vector, who: Who) -> Option<DateTime<Utc>> {
    let from_script =
        v.v.pointer("/inputs/script")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|op| {
                op.get("op").and_then(Value::as_str) == Some("clock")
                    && op.get("party").and_then(Value::as_str).is_none_or(|p| p == who.as_str())
            })
            .filter_map(|op| op.get("now").and_then(Value::as_str))
            .next_back();
    let now = from_script.or_else(|| v.inputs(who).and_then(|i| i.get("now")).and_then(Value::as_str))?;
    parse_xep0082(now)
}

/// A silent refusal (every offline failure is).
fn silent(seq: u64, check: &str) -> Rejection {
    Rejection { seq, check: check.to_owned(), condition: "silent".into(), fields: None, error_sent: false }
}

fn refused(seq: u64, e: &OffError) -> Rejection {
    let check = match e {
        OffError::Refused(c) => c.as_str().to_owned(),
        other => format!("other: {other}"),
    };
    Rejection { seq, check, condition: "silent".into(), fields: None, error_sent: false }
}

/// Replays one party of an offline vector over `stanzas` (`whole`: a positive vector's, whose
/// recorded final state is checked too).
///
/// # Errors
/// A vector that cannot be replayed at all: the reason.
pub(crate) fn replay(v: &Vector, me: Who, stanzas: &[Recorded], whole: bool) -> Result<Outcome, String> {
    match me {
        Who::Alice => replay_alice(v, stanzas, whole),
        Who::Bob => replay_bob(v, stanzas, whole),
    }
}

fn bare_from(stanza: &Element, fallback: &str) -> Result<BareJid, String> {
    let s = stanza.attr("from").unwrap_or(fallback);
    Jid::new(s).map(|j| j.to_bare()).map_err(|e| format!("JID {s:?}: {e}"))
}

fn replay_alice(v: &Vector, stanzas: &[Recorded], whole: bool) -> Result<Outcome, String> {
    let profile = v.profile;
    let mut out = Outcome::default();
    let publish = stanzas.iter().find(|s| s.kind == "pep-publish").ok_or("no PEP publish recorded")?;
    let publish_stanza = parse_xml(&publish.xml)?;
    let x = pep::options_in(&publish_stanza).ok_or("the publish carries no options form")?;
    let options = DataForm::parse(x)
        .and_then(|f| OfflineOptions::parse(&f))
        .map_err(|e| format!("the published options do not parse: {e}"))?;
    let expires = parse_xep0082(&options.expires).ok_or("bad expires")?;
    let record = v.record(Who::Alice);
    let mut pairs = Vec::new();
    let mut same_e = true;
    for (i, g) in options.offers.modp.iter().enumerate() {
        let x = hex(v.v.pointer(&format!("/offline/x/modp{g}")))
            .or_else(|| hex(record.and_then(|r| r.get(&format!("offline_x_modp{g}")))))
            .ok_or_else(|| format!("no recorded x for group {g}"))?;
        let kp = DhKeyPair::from_exponent(*g, &x).map_err(|e| e.to_string())?;
        same_e &= options.dhkeys.get(i).map(Vec::as_slice) == Some(kp.public());
        pairs.push((*g, kp));
    }
    out.line(
        format!("own stanza {} publishes our e per group", publish.seq),
        if same_e { Verdict::Ok } else { Verdict::Fail("a published e is not g^x of the recorded x".into()) },
    );
    let secrets = Secrets {
        audience: Audience::Subscribers,
        offers: options.offers.clone(),
        na: options.my_nonce.clone(),
        pairs,
        expires,
    };
    let now = clock(v, Who::Alice).ok_or("no clock for alice")?;
    let mut trust = MemoryTrust::default();
    let mut replay_store = MemoryReplay::default();
    let mut est: Option<Established> = None;
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    // What was queued while she was away, in order, as the engine handles it on her return.
    for s in stanzas.iter().filter(|s| s.from == Who::Bob) {
        let stanza = parse_xml(&s.xml)?;
        if s.kind == "offline-start" {
            let bob = bare_from(&stanza, "bob@example.com")?;
            for k in v.trusted(Who::Alice).0 {
                trust.trust(&bob, k);
            }
            match receive::accept(&secrets, &stanza, now, profile, &trust, &mut replay_store) {
                Ok((e, content)) => {
                    if let Some(content) = content {
                        let (name, verdict) = body_line(v, s, party::body_of(&content.stanza));
                        out.line(name, verdict);
                    }
                    est = Some(e);
                }
                Err(e) => {
                    out.rejected = Some(refused(s.seq, &e));
                    return Ok(out);
                }
            }
            continue;
        }
        let Some(e) = est.as_mut() else {
            out.rejected = Some(silent(s.seq, esession_offline::Check::NoSession.as_str()));
            return Ok(out);
        };
        match e.receive(&stanza, false, &mut rng) {
            Ok(Received::Stanza { stanza: clear, .. }) => {
                let (name, verdict) = body_line(v, s, party::body_of(&clear));
                out.line(name, verdict);
            }
            // The acknowledgement is never sent in an offline session (XEP-0187 §5, I21): the
            // engine drops it.
            Ok(Received::Terminated { verified, .. }) => out.line(
                format!("stanza {} terminates the session", s.seq),
                if verified { Verdict::Ok } else { Verdict::Fail("an unauthenticated terminate".into()) },
            ),
            Ok(_) => out.line(format!("stanza {}", s.seq), Verdict::Fail("an unknown outcome".into())),
            Err(err) => {
                // Alice never sends inside an offline session: every failure is silent (I22).
                let check = match &err {
                    esession_negotiate::Error::Stanza(se) => stanza_check(se).to_owned(),
                    other => format!("other: {other}"),
                };
                out.rejected = Some(silent(s.seq, &check));
                return Ok(out);
            }
        }
    }
    let Some(e) = est else {
        out.incomplete = Some("no offline start was accepted".into());
        return Ok(out);
    };
    // The replay store holds the accepted start's d and N_B (offline.replay_keys).
    for key in v.v.pointer("/offline/replay_keys").and_then(Value::as_array).into_iter().flatten() {
        let Some((tag, hexv)) = key.as_str().and_then(|k| k.split_once(':')) else { continue };
        let Some(bytes) = hex(Some(&Value::String(hexv.to_owned()))) else { continue };
        let k = [secrets.na.as_slice(), tag.as_bytes(), b":", &bytes].concat();
        out.line(
            format!("replay store holds {tag}"),
            if replay_store.seen(&k, now) {
                Verdict::Ok
            } else {
                Verdict::Fail(format!("{tag} was not recorded"))
            },
        );
    }
    finish(v, Who::Alice, &e, whole, &mut out);
    Ok(out)
}

fn replay_bob(v: &Vector, stanzas: &[Recorded], whole: bool) -> Result<Outcome, String> {
    let profile = v.profile;
    let mut out = Outcome::default();
    let now = clock(v, Who::Bob).ok_or("no clock for bob")?;
    let key = identity_key(v, Who::Bob, v.sign_alg().as_ref())
        .or_else(|| v.private_keys(Who::Bob).into_iter().next())
        .ok_or("bob has no identity key in the inputs")?;
    let cfg = config(v, Who::Bob, None, Some(key));
    // Bob's recorded randomness: a vector without it cannot be replayed.
    let nb = party::nonce_of(v, Who::Bob).ok_or("the vector records no NB")?;
    let counter = party::counter_of(v).ok_or("the vector records no CA")?;
    let mut entropy = party::scripted(nb, counter);
    match v.pick(Who::Bob, "y") {
        Some(y) => entropy.queue.push_back(y),
        None => entropy.queue = party::random_queue(v, Who::Bob, &["dh"]),
    }
    let mut trust = MemoryTrust::default();
    let mut verified: Option<send::Verified> = None;
    let mut est: Option<Established> = None;
    let mut rekeys = party::rekey_exponents(v, Who::Bob);
    for s in stanzas {
        let stanza = parse_xml(&s.xml)?;
        match (s.from, s.kind.as_str()) {
            (Who::Alice, "pep-items") => {
                let Some(x) = pep::options_in(&stanza) else {
                    out.rejected = Some(silent(s.seq, esession_offline::Check::Form.as_str()));
                    return Ok(out);
                };
                let alice = bare_from(&stanza, "alice@example.org")?;
                for k in v.trusted(Who::Bob).0 {
                    trust.trust(&alice, k);
                }
                match send::verify(x, &alice, &trust, now, profile) {
                    Ok(ok) => verified = Some(ok),
                    Err(e) => {
                        out.rejected = Some(refused(s.seq, &e));
                        return Ok(out);
                    }
                }
            }
            (Who::Bob, "offline-start") => {
                let Some(ok) = verified.take() else {
                    out.line(
                        format!("own stanza {} reproduced", s.seq),
                        Verdict::Fail("a start before verified options".into()),
                    );
                    continue;
                };
                let entry = v.entry_of(s);
                let send_entry = entry.as_ref().and_then(|e| e.send());
                let content = send_entry
                    .and_then(|send| content_of(send, true))
                    .or_else(|| party::script_content(v, "offline_start", "body"));
                if c_of(profile, &stanza).is_some() && content.is_none() {
                    out.line(
                        format!("stanza {} <c/>", s.seq),
                        Verdict::Skip(
                            "neither an XEP-0200 entry nor the script records the content of the start"
                                .into(),
                        ),
                    );
                }
                let terminate = form_of(&stanza)
                    .and_then(|x| DataForm::parse(x).ok())
                    .and_then(|f| f.field("terminate").and_then(|t| t.values.first().cloned()))
                    .and_then(|t| parse_bool(&t))
                    .unwrap_or(false);
                let thread = stanza.get_child("thread", CLIENT_NS).map(Element::text).unwrap_or_default();
                match send::start(ok, &cfg, &thread, content, terminate, now, &mut entropy) {
                    Ok((ours, e)) => {
                        let check = own_start(v, &ours, &stanza, send_entry);
                        out.own(s.seq, check);
                        est = Some(e);
                    }
                    Err(e) => {
                        out.rejected = Some(refused(s.seq, &e));
                        return Ok(out);
                    }
                }
            }
            (Who::Bob, "xep0200") => {
                let check = match est.as_mut() {
                    Some(e) => reseal_own(v, s, &stanza, e, &mut rekeys),
                    None => Verdict::Fail("no session to send it in".into()).into(),
                };
                out.own(s.seq, check);
            }
            _ => {}
        }
    }
    match est {
        Some(e) => finish(v, Who::Bob, &e, whole, &mut out),
        None => out.incomplete = Some("no offline start was produced".into()),
    }
    Ok(out)
}

/// Bob's start against the recorded one: the form with identity and MAC, the addressee, the
/// `<c/>`.
fn own_start(v: &Vector, ours: &Element, recorded: &Element, send: Option<&Value>) -> Own {
    let form = same_form(v.profile, ours, recorded);
    if form != Verdict::Ok {
        return form.into();
    }
    if ours.attr("to") != recorded.attr("to") {
        return Verdict::Fail(format!(
            "sent to {:?}, recorded to {:?}",
            ours.attr("to"),
            recorded.attr("to")
        ))
        .into();
    }
    match (c_of(v.profile, ours), c_of(v.profile, recorded)) {
        (None, None) => Verdict::Ok.into(),
        (Some(Ok(c)), Some(Ok(theirs))) => match (v.hash(), v.crypt_alg()) {
            (Ok(hash), Ok(alg)) => compare_c(v.profile, &hash, &alg, &c, &theirs, send),
            _ => Verdict::Fail("the file's algorithms are not implemented".into()).into(),
        },
        _ => {
            Verdict::Fail("the <c/> of the start differs (present in one only, or unreadable)".into()).into()
        }
    }
}

/// What an established offline party must hold: K, its final phase.
fn finish(v: &Vector, me: Who, e: &Established, whole: bool, out: &mut Outcome) {
    out.established = true;
    out.k = Some(e.key_check().clone());
    if !whole {
        return;
    }
    if let Some(state) = v.v.pointer(&format!("/final_state/{}", me.as_str())).and_then(Value::as_str) {
        let closed = e.phase() == Phase::Closed;
        let verdict = match (state, closed) {
            ("active", false) | ("terminated", true) => Verdict::Ok,
            ("active" | "terminated", _) => Verdict::Fail(format!("expected {state} got {:?}", e.phase())),
            (other, _) => Verdict::Skip(format!("unknown state {other:?}")),
        };
        out.line("final state".into(), verdict);
    }
}
