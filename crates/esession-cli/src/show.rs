//! How the account commands show what happens: one line of words per event (alerts and
//! failures by their `Display`, never `Debug`), or one JSON object per line with `--json`.

use esession_negotiate::{Check, KeyState};
use esession_xmpp::{Alert, BareJid, Ended, Engine, Event, Failure, Jid, fingerprint};
use serde_json::{Value, json};

/// Where an event is shown: the hints differ (`/verify` in a chat, a command elsewhere).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Chat,
    Command,
}

/// The local time, for the start of each line.
pub(crate) fn stamp() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// An RFC 3339 time, for JSON.
pub(crate) fn utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The key the peer of the active session with `bare` proved, with how far the user trusts it
/// (verified, pinned on first use, or neither).
pub(crate) fn session_key(engine: &Engine, bare: &BareJid) -> Option<(String, KeyState)> {
    let key = engine.session(bare)?.peer_key()?;
    let fp = fingerprint(key).ok()?;
    let state = engine.trust().record(key).map_or(KeyState::Unverified, |r| r.state());
    Some((fp, state))
}

/// The key the peer proved in the session of `thread` (online or offline), with how far the
/// user trusts it.
pub(crate) fn thread_key(engine: &Engine, bare: &BareJid, thread: &str) -> Option<(String, KeyState)> {
    let key = engine.peer_key_of(bare, thread)?;
    let fp = fingerprint(key).ok()?;
    let state = engine.trust().record(key).map_or(KeyState::Unverified, |r| r.state());
    Some((fp, state))
}

/// Whether the user verified the peer of the session with `bare`: confirmed a SAS with it, or
/// verified the key it proved (a key pinned on first use is not verified).
pub(crate) fn verified(engine: &Engine, bare: &BareJid) -> bool {
    engine.trust().sas_confirmed(bare)
        || session_key(engine, bare).is_some_and(|(_, s)| s == KeyState::Verified)
}

/// The fingerprint as one word (what `trust verify` takes).
pub(crate) fn compact(fp: &str) -> String {
    fp.split_whitespace().collect()
}

/// The words for a key pinned on first use (trusted because it came first, never compared),
/// and how to verify it.
pub(crate) fn pinned_words(bare: &BareJid, fp: &str) -> String {
    format!(
        "pinned on first use, not verified: compare fingerprints with {bare} (it runs `esession \
         fingerprint`), then `esession trust verify {bare} {}`",
        compact(fp)
    )
}

/// `; its key FP is ...`: the words for the key of a session.
pub(crate) fn key_words(bare: &BareJid, key: Option<(String, KeyState)>) -> String {
    match key {
        Some((fp, KeyState::Verified)) => format!("; its key {fp} is verified"),
        Some((fp, KeyState::Pinned)) => format!("; its key {fp} was {}", pinned_words(bare, &fp)),
        Some((fp, _)) => format!("; its key {fp} is NOT verified"),
        None => String::new(),
    }
}

/// The words for a new online session with `who` (`bare`'s resource, or its petname): the key
/// it proved, then one SAS line, the only one of the session (the negotiation's reminders to
/// compare it are not shown again, [`text`]).
pub(crate) fn started(engine: &Engine, bare: &BareJid, who: &str, sas: Option<&str>, place: Place) -> String {
    let key = key_words(bare, session_key(engine, bare));
    let Some(sas) = sas else {
        return format!("* encrypted session with {who} (no SAS to compare){key}");
    };
    let next = match place {
        Place::Chat => "then type /verify".to_owned(),
        Place::Command => format!("then confirm it in `esession chat {bare}` with /verify"),
    };
    format!(
        "* encrypted session with {who}{key}\n* SAS {sas}: compare it with {bare} out of band (by voice, \
         in person), {next}"
    )
}

fn ended(peer: &Jid, why: Ended, offline: bool) -> Option<String> {
    let bare = peer.to_bare();
    // An offline session's end says so: a live session with the contact may go on.
    if offline && !matches!(why, Ended::Object | Ended::Presence) {
        return Some(format!("the offline session with {bare} ended"));
    }
    Some(match why {
        Ended::ByPeer { verified: true } => format!("{bare} ended the session"),
        Ended::ByPeer { verified: false } => {
            format!("{bare} ended the session (the end came in clear: not authenticated)")
        }
        Ended::Acknowledged => format!("the session with {bare} ended"),
        Ended::Object => return None,
        Ended::PeerUnavailable => format!(
            "{peer} went offline without ending the session: the session ended, and what you sent \
             since its last message may not have been read"
        ),
        Ended::PeerError => format!("{bare}'s client answered with an error: the session ended"),
        Ended::Failure => format!("a stanza from {bare} failed verification: the session ended"),
        Ended::Replaced => format!("a new session with {bare} replaced the old one"),
        Ended::Presence if offline => format!("{bare} came online: the offline session ended"),
        Ended::Presence => format!("the session with {bare} ended (you went offline)"),
        Ended::ConnectionLost => format!(
            "the session with {bare} ended with the lost connection; what you sent in it since the \
             connection dropped may not have arrived (send it again: a new line starts a new session)"
        ),
        _ => format!("the session with {bare} ended"),
    })
}

/// The stable name of why a session ended (JSON).
fn ended_kind(why: Ended) -> &'static str {
    match why {
        Ended::ByPeer { verified: true } => "by-peer",
        Ended::ByPeer { verified: false } => "by-peer-unauthenticated",
        Ended::Acknowledged => "acknowledged",
        Ended::Object => "object",
        Ended::PeerUnavailable => "peer-unavailable",
        Ended::PeerError => "peer-error",
        Ended::Failure => "failure",
        Ended::Replaced => "replaced",
        Ended::Presence => "presence",
        Ended::ConnectionLost => "connection-lost",
        _ => "other",
    }
}

/// XMPP error conditions that say a stanza found no one at its address (RFC 6120 §8.3.3).
pub(crate) fn undelivered(condition: &str) -> bool {
    matches!(
        condition,
        "recipient-unavailable"
            | "service-unavailable"
            | "item-not-found"
            | "remote-server-not-found"
            | "remote-server-timeout"
            | "gone"
    )
}

/// An XMPP error condition (RFC 6120 §8.3.3) in words: what happened and, where there is
/// something to do, what; the condition's name follows in parentheses.
pub(crate) fn condition_words(condition: &str) -> String {
    let words = match condition {
        "service-unavailable" => {
            "the contact's client (or its server) does not offer this: it may not be online in a chat, \
             or its client has no encrypted sessions"
        }
        "item-not-found" => "there is nothing at that address: check it, or the contact published nothing",
        "recipient-unavailable" => "the contact's client is not connected now: try again when it is online",
        "remote-server-not-found" => "the contact's server cannot be found: check the address's domain",
        "remote-server-timeout" => "the contact's server did not answer in time: try again later",
        "gone" => "the address no longer exists",
        "not-acceptable" => "the contact's client did not accept what was offered",
        "feature-not-implemented" => "the contact's client does not implement it",
        "forbidden" | "not-authorized" | "not-allowed" => "it is not allowed to you",
        "policy-violation" => "the server's policy refused it (a limit or a filter)",
        "resource-constraint" => "the server or the contact's client is too busy now: try again later",
        "internal-server-error" => "the server failed: try again later",
        _ => return condition.to_owned(),
    };
    format!("{words} ({condition})")
}

/// What to do about a key the peer presented and we do not trust.
pub(crate) fn untrusted_key_hint(bare: &BareJid) -> String {
    format!(
        "Compare fingerprints with {bare} (each runs `esession fingerprint`; read them to each other), \
         then trust its key with `esession trust verify {bare} KEY.pem` (its public key, from \
         `esession fingerprint --pem KEY.pem` on its side)"
    )
}

/// What to do about the key `fp` that `bare` identified with and that we do not trust: compare
/// the fingerprint, then the one command that trusts it (in a chat, `/trust`; elsewhere, its
/// public key with `trust verify`). Without the key (a `hash` identity names none), the
/// general hint.
pub(crate) fn refused_key_hint(bare: &BareJid, fp: Option<&str>) -> String {
    match fp {
        Some(fp) => format!(
            "Its key is {fp}: compare this fingerprint with {bare} (it runs `esession fingerprint`), then \
             trust it with /trust {} in a chat with {bare}, or `esession trust verify {bare} KEY.pem` with \
             its public key (from `esession fingerprint --pem KEY.pem` on its side)",
            compact(fp)
        ),
        None => untrusted_key_hint(bare),
    }
}

/// The fingerprint of the key `bare` last identified with and was refused for.
pub(crate) fn refused_fingerprint(engine: &Engine, bare: &BareJid) -> Option<String> {
    engine.refused_key(bare).and_then(|k| fingerprint(&k).ok())
}

/// The fingerprint of our identity key, if we have one.
pub(crate) fn my_fingerprint(engine: &Engine) -> Option<String> {
    engine.config().identity.as_ref().and_then(|k| fingerprint(&k.public_key()).ok())
}

/// What to do when `bare` refused a session: it may not have verified our key (`mine`).
pub(crate) fn refused_hint(bare: &BareJid, mine: Option<&str>, me: Option<&BareJid>) -> String {
    let fp = mine.map(|f| format!(" ({f})")).unwrap_or_default();
    let me = me.map_or_else(|| "YOUR-JID".to_owned(), ToString::to_string);
    format!(
        "if {bare} has not verified your key{fp}, read it the fingerprint and send it your public key \
         (`esession fingerprint --pem MY-KEY.pem`), which it trusts with `esession trust verify {me} \
         MY-KEY.pem`"
    )
}

fn failure(peer: &Jid, f: &Failure, place: Place, mine: Option<&str>, theirs: Option<&str>) -> String {
    let bare = peer.to_bare();
    let key_check = |c: &Check| matches!(c, Check::KeyTrust | Check::KeyUnknown);
    match f {
        Failure::Negotiation(esession_negotiate::Error::PeerMisbehaved { check, .. }) if key_check(check) => {
            format!(
                "!! {bare} identified with a key you have not verified: the session was refused. {}",
                refused_key_hint(&bare, theirs)
            )
        }
        // A delivery error (XMPP's conditions for an address nobody answers at): the server
        // returned what we sent to a resource that is gone (its client crashed or lost its
        // connection), not a refusal of the session.
        Failure::PeerError { condition: Some(c), .. } if undelivered(c) => format!(
            "!! the server could not deliver to {peer} ({}): its client is gone; what you sent \
             since its last message may not have arrived (send it again: a new line starts a new \
             session when {bare} is back)",
            condition_words(c)
        ),
        Failure::Negotiation(esession_negotiate::Error::Rejected { condition, .. })
        | Failure::PeerError { condition, .. } => {
            let c = condition.as_deref().map_or_else(|| "no reason given".to_owned(), condition_words);
            format!("!! {peer} refused the session: {c}; {}", refused_hint(&bare, mine, None))
        }
        Failure::Offline(esession_offline::Check::KeyTrust) => format!(
            "!! {bare} sent you an offline message with a key you have not verified, and it could not \
             be kept: {}; then ask {bare} to send it again",
            untrusted_key_hint(&bare)
        ),
        Failure::Declined => match place {
            Place::Chat => format!("* {bare} asked for a session: declined"),
            Place::Command => format!(
                "* {bare} asked for a session: declined, since this command does not stay online \
                 (`esession chat {bare}` accepts one)"
            ),
        },
        Failure::Offline(c) => format!("!! an offline message from {peer} was dropped ({})", c.as_str()),
        Failure::Stored => match place {
            Place::Chat => format!(
                "* {bare} asked for a session while you were offline: not answered (type a line to start one)"
            ),
            Place::Command => format!("* {bare} asked for a session while you were offline: not answered"),
        },
        Failure::NoSession => format!(
            "!! a message from {bare} could not be read: it was encrypted in a session that is gone here \
             (this client ended, crashed or lost its connection since); ask {bare} to send it again"
        ),
        other => format!("!! {peer}: {other}"),
    }
}

/// The words for an offline message held because the key that signed it is not trusted: the
/// fingerprint to compare, and the command that trusts the key and shows what is held.
fn held(peer: &Jid, fp: &str, place: Place) -> String {
    let bare = peer.to_bare();
    let compact: String = fp.split_whitespace().collect();
    let how = match place {
        Place::Chat => format!(
            "then /trust {compact} here reads it (`esession trust verify {bare} {compact}` after the chat); \
             /refuse {compact} drops it"
        ),
        Place::Command => format!(
            "then trust it with `esession trust verify {bare} {compact}`, which shows what is held; \
             `esession trust refuse {bare} {compact}` drops it unread"
        ),
    };
    format!(
        "!! an offline message from {bare} is held, unread: it came from an untrusted key {fp}. Compare \
         this fingerprint with {bare} out of band (it runs `esession fingerprint`), {how}"
    )
}

/// The words for a kept record that could not be read back at the start (what was lost).
fn set_aside(lost: &esession_xmpp::engine::SetAside) -> String {
    format!("{lost} (its record on disk could not be read back at the start: it was set aside)")
}

/// The words for one event, or `None` for events a person need not see.
pub(crate) fn text(engine: &Engine, e: &Event, place: Place) -> Option<String> {
    Some(match e {
        Event::Negotiated { peer, thread, offline: true, .. } => {
            let bare = peer.to_bare();
            let key = key_words(&bare, thread_key(engine, &bare, thread));
            format!("* offline session with {}{key}", e.who().unwrap_or_default())
        }
        Event::Negotiated { peer, sas, .. } => {
            let who = e.who().unwrap_or_else(|| peer.to_string());
            started(engine, &peer.to_bare(), &who, sas.as_ref().map(ToString::to_string).as_deref(), place)
        }
        // XEP-0116 §4.7.2's reminders to compare the SAS: the session's SAS line says so once.
        Event::Alert { alert: Alert::SasNotConfirmed { .. } | Alert::NoRetainedSecret { .. }, .. } => {
            return None;
        }
        Event::Message { offline, .. } => {
            let body = e.body()?;
            let who = e.who().unwrap_or_default();
            if *offline {
                format!("<{who}> (sent while you were away) {body}")
            } else {
                format!("<{who}> {body}")
            }
        }
        Event::Untrusted { peer, fingerprint: fp, .. } => held(peer, fp, place),
        Event::Clear { peer, .. } => format!("<{peer}> (NOT ENCRYPTED) {}", e.body()?),
        Event::Alert { peer, alert } => format!("!! {}: {alert}", peer.to_bare()),
        Event::Terminated { peer, why, offline, .. } => format!("* {}", ended(peer, *why, *offline)?),
        Event::Failed { peer, failure: f } => failure(
            peer,
            f,
            place,
            my_fingerprint(engine).as_deref(),
            refused_fingerprint(engine, &peer.to_bare()).as_deref(),
        ),
        Event::StanzaSession { peer, .. } => format!(
            "!! {peer} accepted only an UNENCRYPTED session: nothing is encrypted with it, so nothing is sent"
        ),
        Event::Reconnected { resumed: true, .. } => {
            "* connected to the server again: the connection was resumed, nothing was lost".to_owned()
        }
        Event::Reconnected { jid, resumed: false } => {
            format!(
                "* connected to the server again (as {jid}): sessions in progress ended with the lost connection"
            )
        }
        Event::Unconfirmed { peer, .. } => format!(
            "!! a message to {} may not have arrived: the server had not confirmed it when the connection \
             was lost; send it again",
            peer.to_bare()
        ),
        Event::Presence { peer, available: true } => format!("* {peer} is online"),
        Event::Presence { peer, available: false } => format!("* {peer} is offline"),
        Event::SubscriptionRequest { peer } => match place {
            Place::Chat => format!("* {peer} asks to see your presence: /approve {peer} lets it"),
            Place::Command => {
                format!("* {peer} asks to see your presence: `esession contact approve {peer}` lets it")
            }
        },
        Event::SetAside(lost) => format!("!! {}", set_aside(lost)),
        Event::Unprotected { peer, elements } => {
            // A server's delivery stamp (XEP-0203) beside a stored message is expected.
            let odd: Vec<&str> =
                elements.iter().map(String::as_str).filter(|e| *e != "{urn:xmpp:delay}delay").collect();
            if odd.is_empty() {
                return None;
            }
            format!(
                "!! {peer}: dropped what came in clear beside an encrypted message ({}): not from the session",
                odd.join(", ")
            )
        }
        _ => return None,
    })
}

/// One JSON object for one event, or `None` for events a program need not see.
pub(crate) fn json(engine: &Engine, e: &Event) -> Option<Value> {
    let time = utc();
    Some(match e {
        Event::Negotiated { peer, thread, sas, offline, petname } => {
            let key = thread_key(engine, &peer.to_bare(), thread);
            json!({
                "time": time, "event": "session", "peer": peer.as_str(), "offline": offline,
                "sas": sas.as_ref().map(ToString::to_string), "petname": petname,
                "fingerprint": key.as_ref().map(|k| k.0.clone()),
                "verified": key.as_ref().is_some_and(|k| k.1 == KeyState::Verified),
                "pinned": key.as_ref().is_some_and(|k| k.1 == KeyState::Pinned),
            })
        }
        Event::Message { peer, offline, petname, .. } => json!({
            "time": time, "event": "message", "peer": peer.as_str(), "encrypted": true,
            "offline": offline, "petname": petname, "body": e.body(),
        }),
        Event::Clear { peer, .. } => json!({
            "time": time, "event": "message", "peer": peer.as_str(), "encrypted": false, "body": e.body(),
        }),
        Event::Untrusted { peer, fingerprint: fp, id, .. } => json!({
            "time": time, "event": "held", "peer": peer.as_str(), "fingerprint": fp, "id": id.to_string(),
            "text": held(peer, fp, Place::Command).trim_start_matches("!! ").to_owned(),
        }),
        Event::Alert { peer, alert } => json!({
            "time": time, "event": "alert", "peer": peer.as_str(), "kind": alert.kind(),
            "text": alert.to_string(),
        }),
        Event::Terminated { peer, why, offline, .. } => json!({
            "time": time, "event": "ended", "peer": peer.as_str(), "offline": offline,
            "why": ended_kind(*why), "text": ended(peer, *why, *offline),
        }),
        Event::Failed { peer, failure: f } => json!({
            "time": time, "event": "failed", "peer": peer.as_str(), "condition": f.condition(),
            "text": failure(
                peer,
                f,
                Place::Command,
                my_fingerprint(engine).as_deref(),
                refused_fingerprint(engine, &peer.to_bare()).as_deref(),
            )
                .trim_start_matches("!! ")
                .to_owned(),
        }),
        Event::StanzaSession { peer, .. } => json!({
            "time": time, "event": "unencrypted-session", "peer": peer.as_str(),
        }),
        Event::Presence { peer, available } => json!({
            "time": time, "event": "presence", "peer": peer.as_str(), "available": available,
        }),
        Event::SubscriptionRequest { peer } => json!({
            "time": time, "event": "subscription-request", "peer": peer.as_str(),
        }),
        Event::Unconfirmed { peer, id } => json!({
            "time": time, "event": "unconfirmed", "peer": peer.as_str(), "id": id,
        }),
        Event::Reconnected { jid, resumed } => json!({
            "time": time, "event": "reconnected", "jid": jid.as_str(), "resumed": resumed,
        }),
        Event::SetAside(lost) => json!({
            "time": time, "event": "set-aside", "text": set_aside(lost),
        }),
        Event::Unprotected { elements, .. } if elements.iter().all(|e| e == "{urn:xmpp:delay}delay") => {
            return None;
        }
        Event::Unprotected { peer, elements } => json!({
            "time": time, "event": "unprotected", "peer": peer.as_str(), "elements": elements,
        }),
        _ => return None,
    })
}

/// A note of the command itself (not an event) as JSON: `{"event": kind, "text": ...}` plus
/// `extra`'s fields.
pub(crate) fn note(kind: &str, text: &str, extra: Value) -> Value {
    let mut v = json!({ "time": utc(), "event": kind, "text": text });
    if let (Some(m), Value::Object(x)) = (v.as_object_mut(), extra) {
        m.extend(x);
    }
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use esession_xmpp::esession_crypto::{CryptoProvider, ModpGroup};
    use esession_xmpp::relay::Relay;
    use esession_xmpp::{Config, EngineStores, Mode};

    fn engine() -> Engine {
        let provider = CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::default() };
        Engine::new(Config { provider, ..Config::default() }, EngineStores::in_memory())
    }

    /// A server's bounce for a resource that is gone (its client crashed) read as a refusal with
    /// a hint about keys; it says the text may not have arrived. A real refusal keeps its hint.
    #[test]
    fn a_bounce_is_told_as_undelivered_not_as_a_refusal() {
        let peer = esession_xmpp::Jid::new("bob@example.com/laptop").unwrap();
        let bounce = |c: &str| Failure::PeerError { condition: Some(c.to_owned()), fields: Vec::new() };
        for c in ["recipient-unavailable", "service-unavailable"] {
            let t = failure(&peer, &bounce(c), Place::Chat, None, None);
            assert!(t.contains("could not deliver") && t.contains("may not have arrived"), "{t}");
            assert!(!t.contains("refused") && !t.contains("fingerprint"), "{t}");
        }
        let t = failure(&peer, &bounce("not-acceptable"), Place::Chat, Some("AB12 CD34"), None);
        assert!(t.contains("refused the session: the contact's client did not accept"), "{t}");
        assert!(t.contains("(not-acceptable)"), "{t}");
        // Issue 19: the refusal names the key involved (ours) and how the contact trusts it.
        assert!(t.contains("verified your key (AB12 CD34)") && t.contains("esession trust verify"), "{t}");
    }

    /// Issue 19: a session's start showed three prompts to compare the SAS (its line, then the
    /// negotiation's reminders that it was never confirmed and that no earlier secret was
    /// shared). One SAS line per session, on both sides, in a chat and in a command.
    #[test]
    fn a_session_start_shows_one_sas_line_on_each_side() {
        let mut r = Relay::new(chrono::Utc::now());
        let a = r.add("alice@example.org/pda", engine()).unwrap();
        let b = r.add("bob@example.com/laptop", engine()).unwrap();
        r.start(a, "bob@example.com/laptop", Mode::Four).unwrap();
        r.drive();
        for i in [a, b] {
            let events = r.take_events(i);
            let reminders = events
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::Alert {
                            alert: Alert::SasNotConfirmed { .. } | Alert::NoRetainedSecret { .. },
                            ..
                        }
                    )
                })
                .count();
            assert!(reminders > 0, "the negotiation reminds to compare the SAS: {events:?}");
            for place in [Place::Chat, Place::Command] {
                let lines: Vec<String> = events
                    .iter()
                    .filter_map(|e| text(r.engine(i), e, place))
                    .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                let sas = lines.iter().filter(|l| l.contains("SAS")).count();
                assert_eq!(sas, 1, "one SAS line: {lines:#?}");
                assert!(lines.iter().any(|l| l.starts_with("* SAS ") && l.contains("/verify")), "{lines:#?}");
            }
            // Programs still get every alert.
            let alerts = events.iter().filter_map(|e| json(r.engine(i), e)).filter(|v| v["event"] == "alert");
            assert_eq!(alerts.count(), reminders);
        }
    }

    /// A kept record set aside at the start is told, in words and in JSON (it was shown by
    /// nothing).
    #[test]
    fn a_record_set_aside_is_told() {
        let e = engine();
        let lost = Event::SetAside(esession_xmpp::engine::SetAside::Session { taken: 2 });
        for place in [Place::Chat, Place::Command] {
            let t = text(&e, &lost, place).unwrap();
            assert!(t.starts_with("!! ") && t.contains("its later stanzas are lost"), "{t}");
        }
        let v = json(&e, &lost).unwrap();
        assert_eq!(v["event"], "set-aside");
        assert!(v["text"].as_str().unwrap().contains("cannot be read"), "{v}");
    }
}
