//! Step 3, online: receive-side replay. Each party runs `esession-negotiate` (the code a live
//! session uses) with its secrets fixed ([`Scripted`]) and its own sent forms taken as recorded
//! ([`Recording`]), and processes every stanza its peer sent, in order: the negotiation (range
//! checks, commitment, MACs, signatures, decryption, stores), content piggybacked on a
//! negotiation stanza, then the XEP-0200 traffic through [`Established::receive`]. Its own
//! stanzas are compared with the recorded ones: the negotiation forms with their identity and
//! MAC, a piggybacked `<c/>` it encrypted itself (`Initiator::piggyback`,
//! `Responder::piggyback`), its re-sealed XEP-0200 stanzas and the acknowledgement it answers a
//! terminate with.

use crate::format::{Recorded, Vector, Who, hex, int_u128, parse_xml};
use crate::party::{
    self, CLIENT_NS, Outcome, Own, Recording, Rejection, body_line, c_of, compare_c, config, content_of,
    form_of, identity_key, nonce_of, reseal_own, same_form, stanza_check,
};
use crate::report::{Report, Verdict, short};
use chrono::{DateTime, TimeZone, Utc};
use esession_crypto::{Profile, SecretBytes};
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Accept, Request};
use esession_negotiate::{
    BareJid, Established, Initiator, MemoryRetained, MemoryTrust, Mode, Output, Phase, Received, Responder,
    RetainedStore, Stores,
};
use minidom::Element;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

/// The clock of an online party: its `now` if the inputs give one (nothing online depends on
/// it but the age of retained secrets).
fn now_of(v: &Vector, who: Who) -> DateTime<Utc> {
    v.inputs(who)
        .and_then(|i| i.get("now"))
        .and_then(Value::as_str)
        .and_then(esession_offline::parse_xep0082)
        .or_else(|| Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single())
        .unwrap_or_default()
}

enum Party {
    Alice(Initiator),
    Bob(Responder),
}

impl Party {
    fn poll(&mut self) -> Option<Output> {
        match self {
            Party::Alice(a) => a.poll_output(),
            Party::Bob(b) => b.poll_output(),
        }
    }
}

/// What the outputs drained after one step held.
#[derive(Default)]
struct Drained {
    sent: Vec<Element>,
    established: Option<Box<Established>>,
    received: Vec<(Element, Vec<String>)>,
    rejected: Option<esession_negotiate::Error>,
}

fn drain(p: &mut Party) -> Drained {
    let mut d = Drained::default();
    while let Some(o) = p.poll() {
        match o {
            Output::Send(s) => d.sent.push(s),
            Output::Established(e) => d.established = Some(e),
            Output::Received { content, unprotected, .. } => d.received.push((content, unprotected)),
            Output::Rejected(e) => d.rejected = Some(e),
            _ => {}
        }
    }
    d
}

/// The vector format's names for a negotiation failure, and whether an error was sent: by
/// the party (`sent`), or, for a XEP-0200 failure, by the engine above with the condition the
/// stanza layer names (XEP-0200 §8 MAY, I22).
pub(crate) fn describe(seq: u64, e: &esession_negotiate::Error, sent: &[Element]) -> Rejection {
    let mut error_sent = sent.iter().any(|s| s.attr("type") == Some("error"));
    let (check, condition, fields) = match e {
        esession_negotiate::Error::PeerMisbehaved { check, condition, fields } => {
            (check.as_str().to_owned(), condition.as_str().to_owned(), Some(fields.clone()))
        }
        esession_negotiate::Error::Stanza(se) => {
            error_sent |= se.condition().is_some();
            (stanza_check(se).to_owned(), se.condition().unwrap_or("silent").to_owned(), Some(Vec::new()))
        }
        other => (format!("other: {other}"), "silent".to_owned(), None),
    };
    Rejection { seq, check, condition, fields, error_sent }
}

/// The counters the recording says the session starts with: `state_established` (or the
/// gajim layout's `state_final`), moved past content that came in the establishing stanzas.
///
/// # Errors
/// A recorded state whose counters do not parse.
fn expected_counters(v: &Vector, me: Who) -> Result<Option<(u128, u128)>, String> {
    let Some(rec) = v.record(me) else { return Ok(None) };
    let Some((key, st)) = [("state_established"), ("state_final")]
        .into_iter()
        .find_map(|k| rec.get(k).filter(|s| !s.is_null()).map(|s| (k, s)))
    else {
        return Ok(None);
    };
    let counter = |c: &str| {
        int_u128(st.get(c)).ok_or_else(|| format!("{}_record.{key}.{c} is not a counter", me.as_str()))
    };
    let (mut cs, mut co) = (counter("c_s")?, counter("c_o")?);
    for e in v.entries().iter().filter(|e| e.piggybacked()) {
        let moved = |side: Option<&Value>, c: &mut u128| {
            if let Some(s) = side
                && int_u128(s.get("counter_before")) == Some(*c)
                && let Some(after) = int_u128(s.get("counter_after"))
            {
                *c = after;
            }
        };
        if e.from() == Some(me) {
            moved(e.send(), &mut cs);
        } else {
            moved(e.recv(), &mut co);
        }
    }
    Ok(Some((cs, co)))
}

/// Whether a recorded rejection of `stanza` by the receiver is explained by Gajim's receiver
/// bug (it MACs the counter as 16 octets where the sender MACed minimal octets,
/// ARCHITECTURE.md): our `Profile::Gajim` receiver accepts both encodings by design.
pub(crate) fn gajim_counter_quirk(v: &Vector, recv: &Value, stanza: &Element) -> bool {
    if v.profile != Profile::Gajim {
        return false;
    }
    let (Ok(hash), Some(Ok(c)), Some(km), Some(counter)) =
        (v.hash(), c_of(v.profile, stanza), hex(recv.get("mac_key")), int_u128(recv.get("counter_before")))
    else {
        return false;
    };
    let padded = esession_stanza::hazmat::mac(&hash, &km, &c.m_content(), &counter.to_be_bytes()).ok();
    let minimal =
        esession_stanza::hazmat::mac(&hash, &km, &c.m_content(), &esession_crypto::mpi::encode_u128(counter))
            .ok();
    padded.as_deref() != Some(c.mac.as_slice()) && minimal.as_deref() == Some(c.mac.as_slice())
}

/// Replays party `me` over `stanzas`: a positive vector's (`whole`: also the counters the
/// session starts with and the state it ends in, as recorded), or a negative variant's (the
/// tampered run ends elsewhere).
///
/// # Errors
/// A vector that cannot be replayed at all (no request, no nonce): the reason.
pub(crate) fn replay(v: &Vector, me: Who, stanzas: &[Recorded], whole: bool) -> Result<Outcome, String> {
    let profile = v.profile;
    let first = stanzas
        .iter()
        .find(|s| s.from == Who::Alice && s.kind == "negotiation")
        .ok_or("no request recorded")?;
    let req_stanza = parse_xml(&first.xml).map_err(|e| format!("the request: {e}"))?;
    let request = form_of(&req_stanza)
        .and_then(|x| DataForm::parse(x).ok())
        .and_then(|f| Request::parse(&f).ok())
        .ok_or("the recorded request does not parse")?;
    let mode = if request.is_four_message() { Mode::Four } else { Mode::Three };
    let (alice_jid, bob_jid) = v.jids(stanzas)?;
    let peer_jid = match me {
        Who::Alice => bob_jid.clone(),
        Who::Bob => alice_jid.clone(),
    };
    let peer_bare: BareJid = peer_jid.to_bare();
    let thread = req_stanza.get_child("thread", CLIENT_NS).map_or_else(|| "replay".to_owned(), Element::text);
    let now = now_of(v, me);
    let sign_alg = v.sign_alg();

    // Configuration: the inputs, else what the recorded request offers.
    let mut cfg = config(v, me, Some(&request.offers), identity_key(v, me, sign_alg.as_ref()));
    if me == Who::Alice {
        // Her DH values and nonce must be the recorded ones: offer exactly the recorded groups.
        cfg.provider.modp = request.offers.modp.clone();
        cfg.init_pubkey = request.init_pubkey.clone();
        cfg.resp_pubkey = request.resp_pubkey.clone();
    }

    // Randomness.
    let nonce = nonce_of(v, me).ok_or_else(|| format!("the vector records no nonce of {}", me.as_str()))?;
    let mut entropy = party::scripted(nonce, party::counter_of(v).unwrap_or(0));
    match me {
        Who::Alice => {
            let record = v.record(Who::Alice);
            let mut draws = party::random_queue(v, Who::Alice, &["dh", "dh_secrets"]);
            for g in &request.offers.modp {
                let x = hex(record.and_then(|r| r.get(&format!("x_modp{g}"))))
                    .or_else(|| (v.group().ok() == Some(*g)).then(|| v.pick(Who::Alice, "x")).flatten())
                    .or_else(|| draws.front().cloned());
                draws.pop_front();
                if let Some(x) = x {
                    entropy.by_group.push((*g, x));
                }
            }
        }
        Who::Bob => match v.pick(Who::Bob, "y") {
            Some(y) => entropy.queue.push_back(y),
            None => entropy.queue = party::random_queue(v, Who::Bob, &["dh", "dh_secrets"]),
        },
    }

    // Stores.
    let mut trust = MemoryTrust::default();
    for k in v.trusted(me).0 {
        trust.trust(&peer_bare, k);
    }
    let mut retained = MemoryRetained::default();
    let mut secrets: Vec<Vec<u8>> = v
        .config(me, "retained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| hex(Some(r)).or_else(|| hex(r.get("secret"))))
        .collect();
    if let Some(srs) = v.pick(me, "SRS").filter(|s| !s.is_empty())
        && !secrets.contains(&srs)
    {
        secrets.push(srs);
    }
    for s in secrets {
        retained.replace(&peer_bare, None, SecretBytes::new(s), now, false).map_err(|e| e.to_string())?;
    }

    // Our recorded forms, and the content we piggybacked on them.
    let own: Vec<&Recorded> = stanzas.iter().filter(|s| s.from == me && s.kind == "negotiation").collect();
    let mut forms = VecDeque::new();
    let mut piggyback: Option<(Element, bool)> = None;
    let mut out = Outcome::default();
    for s in &own {
        let stanza = parse_xml(&s.xml).map_err(|e| format!("stanza {}: {e}", s.seq))?;
        if let Some(x) = form_of(&stanza) {
            forms.push_back(x.clone());
        }
        if c_of(profile, &stanza).is_some() {
            let terminate = form_of(&stanza)
                .and_then(|x| DataForm::parse(x).ok())
                .and_then(|f| Accept::parse(&f).ok())
                .is_some_and(|a| a.terminate);
            let recorded = v.entry_of(s).and_then(|e| e.send().and_then(|send| content_of(send, false)));
            match recorded.or_else(|| party::script_content(v, "negotiate", "piggyback")) {
                Some(content) => piggyback = Some((content, terminate)),
                None => out.line(
                    format!("stanza {} <c/>", s.seq),
                    Verdict::Skip(
                        "neither an XEP-0200 entry nor the script records the content piggybacked on it"
                            .into(),
                    ),
                ),
            }
        }
    }

    let cfg = Arc::new(cfg);
    let shaper = Box::new(Recording(forms));
    let mut party = match me {
        Who::Alice => {
            let mut a = Initiator::new(cfg, bob_jid, &thread).with_shaper(shaper);
            if let Some((content, terminate)) = piggyback {
                a.piggyback(content, terminate);
            }
            a.start(mode, &mut entropy).map_err(|e| format!("start: {e}"))?;
            Party::Alice(a)
        }
        Who::Bob => {
            let mut b = Responder::new(cfg, alice_jid, &thread).with_shaper(shaper);
            if let Some((content, _)) = piggyback {
                b.piggyback(content);
            }
            Party::Bob(b)
        }
    };

    let publish_old_in_ack = v
        .entries()
        .iter()
        .find(|e| e.label == "termination.ack" && e.from() == Some(me))
        .and_then(|e| e.send())
        .and_then(|s| s.get("old"))
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty());
    let mut est: Option<Box<Established>> = None;
    let mut sent: VecDeque<Element> = VecDeque::new();
    let mut rekeys = party::rekey_exponents(v, me);
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let expected = if whole {
        expected_counters(v, me).unwrap_or_else(|why| {
            out.line("counters when established".into(), Verdict::Fail(why));
            None
        })
    } else {
        None
    };
    let step = |d: Drained,
                seq: u64,
                est: &mut Option<Box<Established>>,
                sent: &mut VecDeque<Element>,
                out: &mut Outcome| {
        sent.extend(d.sent.iter().filter(|s| s.attr("type") != Some("error")).cloned());
        if let Some(e) = d.established {
            if let Some((cs, co)) = expected {
                let got = (e.session().send_counter().unwrap_or(0), e.session().recv_counter());
                let verdict = if got == (cs, co) {
                    Verdict::Ok
                } else {
                    Verdict::Fail(format!(
                        "expected C_s {cs:x} C_o {co:x} got C_s {:x} C_o {:x}",
                        got.0, got.1
                    ))
                };
                out.line("counters when established".into(), verdict);
            }
            *est = Some(e);
        }
        for (content, _unprotected) in d.received {
            match stanzas.iter().find(|s| s.seq == seq) {
                Some(rec) => {
                    let (name, verdict) = body_line(v, rec, party::body_of(&content));
                    out.line(name, verdict);
                }
                None => out.line(
                    "content received".into(),
                    Verdict::Fail("content received before any recorded stanza".into()),
                ),
            }
        }
        d.rejected
    };
    let d = drain(&mut party);
    if let Some(e) = step(d, 0, &mut est, &mut sent, &mut out) {
        out.incomplete = Some(format!("refused before any stanza: {e}"));
        return Ok(out);
    }

    for s in stanzas {
        let stanza = parse_xml(&s.xml).map_err(|e| format!("stanza {}: {e}", s.seq))?;
        if s.from == me {
            let check = match (s.kind.as_str(), est.as_mut(), sent.pop_front()) {
                // Our own negotiation stanza: the form, identity and MAC we made, and the
                // content we piggybacked.
                ("negotiation", _, Some(ours)) => own_negotiation(v, s, &ours, &stanza),
                ("negotiation", _, None) => Verdict::Fail("we did not send it".into()).into(),
                // An acknowledgement we made when the peer terminated.
                ("xep0200", Some(_), Some(ours)) => own_made_c(v, s, &ours, &stanza),
                ("xep0200", Some(e), None) => reseal_own(v, s, &stanza, e, &mut rekeys),
                ("xep0200", None, _) => Verdict::Fail("no session to send it in".into()).into(),
                (kind, _, ours) => {
                    if let Some(ours) = ours {
                        sent.push_front(ours);
                    }
                    Verdict::Skip(format!("a {kind} stanza is not replayed in an online negotiation")).into()
                }
            };
            out.own(s.seq, check);
            continue;
        }
        let negotiation = s.kind == "negotiation";
        match est.as_mut() {
            Some(e) if !negotiation => {
                let entry = v.entry_of(s);
                let recorded_error = entry
                    .as_ref()
                    .and_then(|e| e.recv())
                    .filter(|r| r.get("error").is_some_and(|x| !x.is_null()));
                match e.receive(&stanza, publish_old_in_ack, &mut rng) {
                    Ok(Received::Stanza { stanza: clear, .. }) => {
                        if let Some(recv) = recorded_error {
                            let verdict = if gajim_counter_quirk(v, recv, &stanza) {
                                Verdict::Ok
                            } else {
                                Verdict::Fail("accepted; the recording says the receiver refused it".into())
                            };
                            out.line(format!("stanza {} accepted (the original receiver refused its minimal counter octets)", s.seq), verdict);
                        } else {
                            let (name, verdict) = body_line(v, s, party::body_of(&clear));
                            out.line(name, verdict);
                        }
                    }
                    Ok(Received::Terminated { ack, verified }) => {
                        out.line(
                            format!("stanza {} terminates the session", s.seq),
                            if verified {
                                Verdict::Ok
                            } else {
                                Verdict::Fail("an unauthenticated terminate".into())
                            },
                        );
                        sent.extend(ack);
                    }
                    Ok(_) => {
                        out.line(format!("stanza {}", s.seq), Verdict::Fail("an unknown outcome".into()))
                    }
                    Err(err) if recorded_error.is_some() => {
                        out.line(format!("stanza {} refused as recorded ({err})", s.seq), Verdict::Ok);
                        let rest: Vec<String> =
                            stanzas.iter().filter(|x| x.seq > s.seq).map(|x| x.seq.to_string()).collect();
                        if !rest.is_empty() {
                            out.line(
                                format!("stanzas {} after the refusal", rest.join(", ")),
                                Verdict::Skip(format!(
                                    "not replayed: the session ended at the recorded refusal of stanza {}",
                                    s.seq
                                )),
                            );
                        }
                        break;
                    }
                    Err(err) => {
                        out.rejected = Some(describe(s.seq, &err, &[]));
                        break;
                    }
                }
            }
            _ => {
                let r = {
                    let mut stores = Stores { trust: &mut trust, retained: &mut retained };
                    match &mut party {
                        Party::Alice(a) => a.handle(now, &stanza, &mut entropy, &mut stores),
                        Party::Bob(b) => b.handle(now, &stanza, &mut entropy, &mut stores),
                    }
                };
                let d = drain(&mut party);
                let sent_now = d.sent.clone();
                if let Err(err) = r {
                    out.rejected = Some(describe(s.seq, &err, &sent_now));
                    break;
                }
                if let Some(err) = step(d, s.seq, &mut est, &mut sent, &mut out) {
                    // Content piggybacked on the stanza failed after the negotiation verified.
                    out.rejected = Some(describe(s.seq, &err, &[]));
                    break;
                }
            }
        }
    }

    if let Some(e) = est {
        out.established = true;
        out.sas = e.sas().map(ToString::to_string);
        out.k = Some(e.key_check().clone());
        if whole {
            final_state(v, me, &e, &retained, &peer_bare, now, &mut out);
        }
    } else if out.rejected.is_none() {
        out.incomplete = Some("the negotiation did not complete".into());
    }
    Ok(out)
}

/// Our own negotiation stanza against the recorded one: the form (with identity and MAC) and
/// the `<c/>` we piggybacked.
fn own_negotiation(v: &Vector, rec: &Recorded, ours: &Element, recorded: &Element) -> Own {
    let form = same_form(v.profile, ours, recorded);
    if form != Verdict::Ok {
        return form.into();
    }
    match (c_of(v.profile, recorded), c_of(v.profile, ours)) {
        (None, None) => Verdict::Ok.into(),
        (Some(_), None) => Verdict::Fail("the recorded stanza carries a <c/>, ours none".into()).into(),
        (None, Some(_)) => Verdict::Fail("ours carries a <c/>, the recorded stanza none".into()).into(),
        (Some(Err(e)), _) | (_, Some(Err(e))) => Verdict::Fail(format!("a <c/> does not parse: {e}")).into(),
        (Some(Ok(theirs)), Some(Ok(c))) => c_verdict(v, rec, &c, &theirs),
    }
}

/// A XEP-0200 stanza our session made (an acknowledgement) against the recorded one.
fn own_made_c(v: &Vector, rec: &Recorded, ours: &Element, recorded: &Element) -> Own {
    match (c_of(v.profile, recorded), c_of(v.profile, ours)) {
        (Some(Ok(theirs)), Some(Ok(c))) => c_verdict(v, rec, &c, &theirs),
        _ => Verdict::Fail("a <c/> is missing or does not parse".into()).into(),
    }
}

fn c_verdict(
    v: &Vector,
    rec: &Recorded,
    ours: &esession_stanza::Encrypted,
    theirs: &esession_stanza::Encrypted,
) -> Own {
    let (Ok(hash), Ok(alg)) = (v.hash(), v.crypt_alg()) else {
        return Verdict::Fail("the file's algorithms are not implemented".into()).into();
    };
    let entry = v.entry_of(rec);
    compare_c(v.profile, &hash, &alg, ours, theirs, entry.as_ref().and_then(|e| e.send()))
}

/// The state the recording says the party ends in: its phase, and the secret it retains.
fn final_state(
    v: &Vector,
    me: Who,
    e: &Established,
    retained: &MemoryRetained,
    peer: &BareJid,
    now: DateTime<Utc>,
    out: &mut Outcome,
) {
    let Some(fs) = v.v.get("final_state").filter(|f| f.is_object()) else { return };
    if let Some(state) = fs.get(me.as_str()).and_then(Value::as_str) {
        let closed = e.phase() == Phase::Closed;
        let verdict = match (state, closed) {
            ("active", false) | ("terminated", true) => Verdict::Ok,
            ("active" | "terminated", _) => Verdict::Fail(format!("expected {state} got {:?}", e.phase())),
            (other, _) => Verdict::Skip(format!("unknown state {other:?}")),
        };
        out.line("final state".into(), verdict);
    }
    if let Some(list) = fs.get(format!("{}_retained_after", me.as_str())).and_then(Value::as_array) {
        // The secrets kept, in whatever order the store keeps them.
        let Some(mut expected) = list.iter().map(|x| hex(Some(x))).collect::<Option<Vec<Vec<u8>>>>() else {
            let name = format!("final_state.{}_retained_after", me.as_str());
            return out.line(name, Verdict::Fail("a secret that is not hex".into()));
        };
        let mut got: Vec<Vec<u8>> =
            retained.for_jid(peer, now).iter().map(|r| r.secret.expose_secret().to_vec()).collect();
        expected.sort();
        got.sort();
        let verdict = if expected == got {
            Verdict::Ok
        } else {
            let show = |l: &[Vec<u8>]| l.iter().map(|s| short(s)).collect::<Vec<_>>().join(", ");
            Verdict::Fail(format!("expected [{}] got [{}]", show(&expected), show(&got)))
        };
        out.line("retained secrets after".into(), verdict);
    }
}

/// Step 3 on a positive online vector: both parties, with their lines.
pub(crate) fn check(v: &Vector, r: &mut Report) {
    let stanzas = v.recorded();
    if !stanzas.iter().any(|s| s.kind == "negotiation") {
        return r.skip(&v.n("step3 replay"), "the file records no negotiation stanza to replay");
    }
    for me in [Who::Alice, Who::Bob] {
        report_outcome(v, me, replay(v, me, &stanzas, true), r);
    }
}

/// Reports a positive replay: established, K, SAS, and the party's lines.
pub(crate) fn report_outcome(v: &Vector, me: Who, outcome: Result<Outcome, String>, r: &mut Report) {
    let nm = |k: &str| v.n(&format!("step3 {} {k}", me.as_str()));
    let out = match outcome {
        Ok(o) => o,
        Err(e) => return r.fail(&nm("replay"), &e),
    };
    match (&out.rejected, &out.incomplete, out.established) {
        (Some(rej), _, _) => r.fail(&nm("established"), &rej.to_string()),
        (None, Some(why), _) => r.fail(&nm("established"), why),
        (None, None, true) => r.ok(&nm("established")),
        (None, None, false) => r.fail(&nm("established"), "no session"),
    }
    if out.established {
        let four = v.mode() == Some(4);
        let k_key = if four { "K_final" } else { "K" };
        match (v.pick(me, k_key).filter(|k| !k.is_empty()), &out.k) {
            // The session keeps no K: its check value against the check value of the file's.
            (Some(exp), Some(k)) => {
                let want = esession_negotiate::KeyCheck::of(&SecretBytes::new(exp.clone()));
                if &want == k {
                    r.ok(&nm(k_key));
                } else {
                    r.fail(&nm(k_key), "the session's K differs from the file's");
                }
            }
            (Some(_), None) => r.fail(&nm(k_key), "no key"),
            _ => {}
        }
        if four {
            let exp = v.value_str(&format!("{}_SAS", me.as_str())).or_else(|| v.value_str("SAS"));
            if let Some(exp) = exp {
                r.bytes(&nm("SAS"), exp.as_bytes(), Ok(out.sas.clone().unwrap_or_default().into_bytes()));
            }
        }
    }
    for l in out.lines {
        r.push(crate::report::Line::new(nm(&l.name), l.verdict));
    }
}
