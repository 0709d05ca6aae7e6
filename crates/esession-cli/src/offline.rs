//! Step 3 of `vectors check` for XEP-0187 vectors: each party runs the `esession-offline` code a
//! live client uses, with its secrets fixed.
//!
//! * Bob verifies the options in the PEP items result (with his clock and his trusted keys),
//!   starts the session with his recorded N_B, C_A and y, and must produce the recorded start
//!   (form, identity, MAC, `<c/>`); his later stanzas are re-sealed and compared.
//! * Alice keeps what her recorded publish says (N_A, one x per group, expiry, offers), returns at
//!   her clock, accepts the start (replay store, identity, signature) and decrypts every later
//!   stanza. Every refusal is silent.
//!
//! A negative variant's `scenario_patch` is applied to `inputs` first: an object as a JSON merge
//! patch (RFC 7386), an array as JSON Patch operations (RFC 6902) whose paths are relative to
//! `inputs` (a leading `/inputs` is accepted).

use crate::replay::{
    Reached, Recorded, Scripted, hex, private_key, recorded_mac, rekey_exponents, reseal_own, same_form,
    stanza_check, trusted,
};
use esession_crypto::{DhKeyPair, ModpGroup, Profile, SignAlg};
use esession_forms::dataform::DataForm;
use esession_forms::esession::OfflineOptions;
use esession_negotiate::{Config, Established, MemoryTrust, bare};
use esession_offline::publish::Secrets;
use esession_offline::replay::{MemoryReplay, ReplayStore};
use esession_offline::{Audience, Error as OffError, parse_xep0082, pep, receive, send};
use minidom::Element;
use serde_json::Value;

/// Applies a variant's `scenario_patch` to a copy of the vector's `inputs`.
///
/// # Errors
/// A patch of a shape this checker does not know, or one that changes nothing.
pub(crate) fn patched(v: &Value, patch: Option<&Value>) -> Result<Value, String> {
    let mut out = v.clone();
    let Some(patch) = patch.filter(|p| !p.is_null()) else { return Ok(out) };
    let inputs = out.get_mut("inputs").ok_or("no inputs to patch")?;
    let before = inputs.clone();
    match patch {
        Value::Object(_) => {
            // A patch may name `inputs` itself.
            let p = patch.get("inputs").unwrap_or(patch);
            merge(inputs, p);
        }
        Value::Array(ops) => {
            for op in ops {
                let path = op.get("path").and_then(Value::as_str).ok_or("patch operation without path")?;
                let path = path.strip_prefix("/inputs").unwrap_or(path);
                let value = op.get("value").cloned().unwrap_or(Value::Null);
                match op.get("op").and_then(Value::as_str) {
                    Some("replace" | "add") => set_pointer(inputs, path, value)?,
                    other => return Err(format!("patch operation {other:?} not supported")),
                }
            }
        }
        _ => return Err("scenario_patch is neither an object nor a list".into()),
    }
    if *inputs == before {
        return Err("scenario_patch changes nothing in inputs".into());
    }
    Ok(out)
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn set_pointer(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *root = value;
        return Ok(());
    }
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| format!("bad patch path {path}"))?;
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = root.pointer_mut(parent).ok_or_else(|| format!("patch path {path} not found"))?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad patch index in {path}"))?;
                if i < a.len() {
                    a[i] = value;
                } else if i == a.len() {
                    a.push(value);
                } else {
                    return Err(format!("patch index out of range in {path}"));
                }
            }
        }
        _ => return Err(format!("patch path {path} does not lead into an object or list")),
    }
    Ok(())
}

/// The party's clock: its last `clock` operation in the script, else its `now`.
fn clock(v: &Value, who: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let from_script = v
        .pointer("/inputs/script")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|op| {
            op.get("op").and_then(Value::as_str) == Some("clock")
                && op.get("party").and_then(Value::as_str).is_none_or(|p| p == who)
        })
        .filter_map(|op| op.get("now").and_then(Value::as_str))
        .next_back();
    let now = from_script.or_else(|| v.pointer(&format!("/inputs/{who}/now")).and_then(Value::as_str))?;
    parse_xep0082(now)
}

fn parse(s: &Recorded) -> Result<Element, String> {
    esession_forms::xml::parse(&s.xml).map_err(|e| format!("stanza {}: {e}", s.seq))
}

fn refused(seq: u64, e: &OffError) -> Reached {
    let check = match e {
        OffError::Refused(c) => c.as_str().to_owned(),
        other => format!("other: {other}"),
    };
    Reached::Rejected { seq, check, condition: "silent".into() }
}

fn profile(v: &Value) -> Result<Profile, String> {
    v.get("profile").and_then(Value::as_str).unwrap_or("xep").parse().map_err(|_| "profile".into())
}

/// Replays one party of an offline vector over `stanzas`, after `patch`.
pub(crate) fn replay(
    v: &Value,
    alice: bool,
    stanzas: &[Recorded],
    patch: Option<&Value>,
) -> Result<Reached, String> {
    let v = &patched(v, patch)?;
    if alice { replay_alice(v, stanzas) } else { replay_bob(v, stanzas) }
}

fn replay_alice(v: &Value, stanzas: &[Recorded]) -> Result<Reached, String> {
    let profile = profile(v)?;
    let publish = stanzas.iter().find(|s| s.kind == "pep-publish").ok_or("no PEP publish recorded")?;
    let publish_stanza = parse(publish)?;
    let x = pep::options_in(&publish_stanza).ok_or("the publish carries no options form")?;
    let options = DataForm::parse(x)
        .and_then(|f| OfflineOptions::parse(&f))
        .map_err(|e| format!("the published options do not parse: {e}"))?;
    let expires = parse_xep0082(&options.expires).ok_or("bad expires")?;
    let record = v.get("alice_record").cloned().unwrap_or(Value::Null);
    let mut pairs = Vec::new();
    let mut sent_ok = Vec::new();
    for (i, g) in options.offers.modp.iter().enumerate() {
        let x = hex(v.pointer(&format!("/offline/x/modp{g}")))
            .or_else(|| hex(record.get(format!("offline_x_modp{g}"))))
            .ok_or_else(|| format!("no recorded x for group {g}"))?;
        let kp = DhKeyPair::from_exponent(*g, &x).map_err(|e| e.to_string())?;
        // Our published e must be the recorded one.
        sent_ok.push((publish.seq, options.dhkeys.get(i).map(Vec::as_slice) == Some(kp.public())));
        pairs.push((*g, kp));
    }
    let secrets = Secrets {
        audience: Audience::Subscribers,
        offers: options.offers.clone(),
        na: options.my_nonce.clone(),
        pairs,
        expires,
    };
    let now = clock(v, "alice").ok_or("no clock for alice")?;
    let mut trust = MemoryTrust::default();
    let mut replay_store = MemoryReplay::default();
    let mut est: Option<Established> = None;
    let mut bodies = Vec::new();
    for s in stanzas.iter().filter(|s| !s.alice) {
        let stanza = parse(s)?;
        if s.kind == "offline-start" || est.is_none() {
            let bob = bare(stanza.attr("from").unwrap_or("bob@example.com")).to_owned();
            for k in trusted(v, "alice") {
                trust.trust(&bob, k);
            }
            match receive::accept(&secrets, &stanza, now, profile, &trust, &mut replay_store) {
                Ok((e, content)) => {
                    bodies.push((
                        s.seq,
                        content.and_then(|c| c.stanza.get_child("body", "jabber:client").map(Element::text)),
                    ));
                    est = Some(e);
                }
                Err(e) => return Ok(refused(s.seq, &e)),
            }
            continue;
        }
        let Some(e) = est.as_mut() else { continue };
        match e.session.decrypt(&stanza) {
            Ok((clear, _)) => {
                bodies.push((s.seq, clear.children().find(|c| c.name() == "body").map(Element::text)))
            }
            // Alice never sends inside an offline session: every failure is silent (§4, I22).
            Err(err) => {
                return Ok(Reached::Rejected {
                    seq: s.seq,
                    check: stanza_check(&err).into(),
                    condition: "silent".into(),
                });
            }
        }
    }
    let Some(e) = est else { return Ok(Reached::Incomplete("no offline start was accepted".into())) };
    // The replay store holds the accepted start's d and N_B (offline.replay_keys).
    let ts = u64::try_from(now.timestamp()).unwrap_or(0);
    for key in v.pointer("/offline/replay_keys").and_then(Value::as_array).into_iter().flatten() {
        let Some((tag, hexv)) = key.as_str().and_then(|k| k.split_once(':')) else { continue };
        let Some(bytes) = hex(Some(&Value::String(hexv.to_owned()))) else { continue };
        let k = [secrets.na.as_slice(), tag.as_bytes(), b":", &bytes].concat();
        sent_ok.push((u64::MAX, replay_store.seen(&k, ts)));
    }
    Ok(Reached::Established { sas: None, k: e.k.expose_secret().to_vec(), bodies, sent_ok })
}

fn replay_bob(v: &Value, stanzas: &[Recorded]) -> Result<Reached, String> {
    let profile = profile(v)?;
    let values = v.get("values").ok_or("no values")?;
    let now = clock(v, "bob").ok_or("no clock for bob")?;
    let sign_alg: Option<SignAlg> =
        values.get("sign_alg").and_then(Value::as_str).and_then(|s| s.parse().ok());
    // Bob needs an identity key of an algorithm Alice offered; try the negotiated one first.
    let key = private_key(v, "bob", sign_alg.as_ref())
        .or_else(|| private_key(v, "bob", Some(&SignAlg::RsaSha256)))
        .or_else(|| private_key(v, "bob", Some(&SignAlg::DsaSha256)))
        .ok_or("bob has no identity key")?;
    let mut cfg = Config::with_identity(key);
    cfg.profile = profile;
    cfg.provider = esession_crypto::CryptoProvider::all();
    cfg.support.crypto = esession_crypto::CryptoProvider::all();
    let group = values.get("modp_group").and_then(Value::as_u64).unwrap_or(0);
    // Bob's recorded randomness: a vector without it cannot be replayed.
    let nb = hex(values.get("NB")).ok_or("the vector records no NB")?;
    let y = hex(values.get("y")).ok_or("the vector records no y")?;
    let counter = values
        .get("CA")
        .and_then(Value::as_str)
        .and_then(|c| u128::from_str_radix(c, 16).ok())
        .ok_or("the vector records no CA")?;
    let mut entropy = Scripted {
        nonce: nb,
        counter,
        dh: vec![(ModpGroup::from_number(group as u32), y)],
        rng: getrandom::rand_core::UnwrapErr(getrandom::SysRng),
    };
    let mut trust = MemoryTrust::default();
    let mut verified: Option<send::Verified> = None;
    let mut est: Option<Established> = None;
    let mut sent_ok = Vec::new();
    let mut rekeys = rekey_exponents(v, false);
    let start_op = v
        .pointer("/inputs/script")
        .and_then(Value::as_array)
        .and_then(|ops| ops.iter().find(|op| op.get("op").and_then(Value::as_str) == Some("offline_start")));
    for s in stanzas {
        let stanza = parse(s)?;
        match (s.alice, s.kind.as_str()) {
            (true, "pep-items") => {
                let Some(x) = pep::options_in(&stanza) else {
                    return Ok(Reached::Rejected {
                        seq: s.seq,
                        check: "form".into(),
                        condition: "silent".into(),
                    });
                };
                let alice = bare(stanza.attr("from").unwrap_or("alice@example.org")).to_owned();
                for k in trusted(v, "bob") {
                    trust.trust(&alice, k);
                }
                match send::verify(x, &alice, &trust, now, profile) {
                    Ok(ok) => verified = Some(ok),
                    Err(e) => return Ok(refused(s.seq, &e)),
                }
            }
            (false, "offline-start") => {
                let Some(ok) = verified.as_ref() else { return Err("a start before any options".into()) };
                let content = start_op.and_then(|op| op.get("body")).and_then(Value::as_str).map(|body| {
                    let mut m = Element::builder("message", "jabber:client")
                        .append(Element::builder("body", "jabber:client").append(body))
                        .build();
                    if let Some(cs) = start_op.and_then(|op| op.get("chatstate")).and_then(Value::as_str) {
                        m.append_child(Element::bare(cs, "http://jabber.org/protocol/chatstates"));
                    }
                    m
                });
                let content = content.filter(|_| recorded_mac(&stanza).is_some());
                let terminate =
                    start_op.and_then(|op| op.get("terminate")).and_then(Value::as_bool).unwrap_or(false);
                let thread =
                    stanza.get_child("thread", "jabber:client").map(Element::text).unwrap_or_default();
                match send::start(ok, &cfg, &thread, content, terminate, now, &mut entropy) {
                    Ok((ours, e)) => {
                        let same_to = ours.attr("to") == stanza.attr("to");
                        let same_c = recorded_mac(&ours) == recorded_mac(&stanza);
                        sent_ok.push((s.seq, same_form(&ours, &stanza) && same_to && same_c));
                        est = Some(e);
                    }
                    Err(e) => return Ok(refused(s.seq, &e)),
                }
            }
            (false, "xep0200") => {
                if let Some(e) = est.as_mut() {
                    sent_ok.push((s.seq, reseal_own(v, s, &stanza, e, &mut rekeys)?));
                }
            }
            _ => {}
        }
    }
    match est {
        Some(e) => Ok(Reached::Established {
            sas: None,
            k: e.k.expose_secret().to_vec(),
            bodies: Vec::new(),
            sent_ok,
        }),
        None => Ok(Reached::Incomplete("no offline start was produced".into())),
    }
}
