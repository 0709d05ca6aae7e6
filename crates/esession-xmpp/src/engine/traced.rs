//! What the engine traces (`tracing`), captured by a small subscriber during an in-memory
//! negotiation: the steps are there, and no message text and no SAS ever is.

#![allow(clippy::unwrap_used)]

use super::{Engine, EngineStores, Event};
use crate::relay::Relay;
use esession_crypto::{CryptoProvider, ModpGroup};
use esession_negotiate::{Config, Mode};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};

/// Every span and event, as one line of text each: level, name or message, and fields.
#[derive(Clone, Default)]
struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    ids: Arc<AtomicU64>,
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Capture {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut l = Line(format!("{} span {}", span.metadata().level(), span.metadata().name()));
        span.record(&mut l);
        self.push(l.0);
        Id::from_u64(self.ids.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut l = Line("record".into());
        values.record(&mut l);
        self.push(l.0);
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut l = Line(format!("{} event", event.metadata().level()));
        event.record(&mut l);
        self.push(l.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn config() -> Config {
    Config {
        provider: CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::default() },
        ..Config::default()
    }
}

const ALICE: &str = "alice@example.org/pda";
const BOB: &str = "bob@example.com/laptop";
const SECRET_TEXT: &str = "the launch code is 0000 purple";
const REPLY_TEXT: &str = "acknowledged, purple";

#[test]
fn negotiation_steps_and_failed_checks_are_traced_without_content_or_sas() {
    let capture = Capture::default();
    let mut relay = Relay::new(chrono::Utc::now());
    let a = relay.add(ALICE, Engine::new(config(), EngineStores::in_memory())).unwrap();
    let b = relay.add(BOB, Engine::new(config(), EngineStores::in_memory())).unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        relay.start(a, BOB, Mode::Four).unwrap();
        relay.drive();
        relay.chat(a, "bob@example.com", SECRET_TEXT).unwrap();
        relay.chat(b, "alice@example.org", REPLY_TEXT).unwrap();
        relay.drive();
        // A clear message, and a <c/> that belongs to no session: a failed check.
        let clear: minidom::Element = format!(
            "<message xmlns='jabber:client' to='{BOB}' type='chat'><body>{SECRET_TEXT}</body></message>"
        )
        .parse()
        .unwrap();
        relay.inject(a, clear);
        let stray: minidom::Element = format!(
            "<message xmlns='jabber:client' to='{BOB}' type='chat'><thread>esession-0000</thread>\
             <c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'><data>AAAA</data></c></message>"
        )
        .parse()
        .unwrap();
        relay.inject(a, stray);
        relay.drive();
        // Nothing goes out in clear by accident: the refusal is traced.
        let refused = relay.engine(a).chat(
            &crate::parse_bare("carol@example.net").unwrap(),
            SECRET_TEXT,
            Default::default(),
        );
        assert!(matches!(refused, Err(crate::Error::NotProtected(_))));
        let w = relay.engine(a).terminate(&crate::parse_bare("bob@example.com").unwrap()).unwrap();
        relay.inject(a, w);
        relay.drive();
    });
    let events: Vec<Event> = relay.events(a).iter().chain(relay.events(b)).cloned().collect();
    let sas = events
        .iter()
        .find_map(|e| match e {
            Event::Negotiated { sas: Some(s), .. } => Some(s.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(events.iter().any(|e| e.body().as_deref() == Some(SECRET_TEXT)), "the message went through");
    assert!(events.iter().any(|e| matches!(e, Event::Clear { .. })));
    let text = capture.text();
    for step in [
        "negotiation started",
        "negotiation request received",
        "negotiation response received",
        "negotiation accept received",
        "session established",
        "protected stanza received",
        "stanza in clear: not protected",
        "kind=\"no-session\"",
        "refused: no session protects this stanza",
        "session ended",
        "why=Acknowledged",
        "span esession.stanza",
    ] {
        assert!(text.contains(step), "{step:?} is not traced:\n{text}");
    }
    assert!(text.contains("peer=bob@example.com") && text.contains("peer=alice@example.org"), "{text}");
    // Never the content, never the SAS (nor its digits alone, whatever the formatting).
    for secret in [SECRET_TEXT, "launch code", "purple", REPLY_TEXT, sas.as_str()] {
        assert!(!text.contains(secret), "{secret:?} was traced:\n{text}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_is_traced_in_its_span_without_the_password() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let account = crate::Account::in_memory().unwrap();
    // Nothing listens on port 1 of loopback: refused at once.
    let password = "correct-horse-battery-staple";
    let opts = crate::Options::new("bot@localhost", password, "127.0.0.1:1");
    let e = crate::Client::connect(opts, account).await.unwrap_err();
    assert!(matches!(e, crate::Error::Unreachable { .. }), "{e:?}");
    let text = capture.text();
    for step in [
        "span esession.connect",
        "account=bot@localhost",
        "server=127.0.0.1:1",
        "connecting",
        "connection failed",
    ] {
        assert!(text.contains(step), "{step:?} is not traced:\n{text}");
    }
    assert!(!text.contains(password), "the password was traced:\n{text}");
}
