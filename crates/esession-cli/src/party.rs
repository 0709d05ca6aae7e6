//! `esession party --role alice|bob --stdio [options]`: one party driven by lines on stdin, for
//! interop tests (ARCHITECTURE.md "CLI and harness interfaces").
//!
//! Input lines: stanza XML (delivered to this party), or a command: `!start 3|4`, `!send TEXT`,
//! `!rekey [TEXT]`, `!old TEXT`, `!presence SHOW`, `!iq XML`, `!terminate`,
//! `!publish-offline [SECONDS [RESOURCE]]`, `!offline-send TEXT`, `!offline-terminate TEXT`,
//! `!return`, `!now ISO-8601`, `!state`, `!quit`.
//!
//! Output lines, in order: `OUT <stanza>` (for the peer, or for the server: a relay routes them)
//! and `EVT {json}`. Every line is flushed as it is written; `!state` answers after everything
//! the earlier lines caused.

use chrono::{DateTime, Utc};
use esession_crypto::{CryptAlg, HashAlg, ModpGroup, PrivateKey, Profile, PublicKey, SecretBytes};
use esession_forms::esession::Wrapper;
use esession_forms::names::StanzaType;
use esession_negotiate::{
    Config, Established, Initiator, MemoryRetained, MemoryTrust, Mode, Output, Received, Responder,
    RetainedStore, RngEntropy, Stores, TrustStore, bare,
};
use esession_offline::away::{Outbox, come_back, go_offline};
use esession_offline::publish::{Plan, Secrets};
use esession_offline::replay::{MemoryReplay, ReplayStore};
use esession_offline::{Audience, pep, send};
use esession_stanza::EncryptOptions;
use minidom::Element;
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

type Rng = getrandom::rand_core::UnwrapErr<getrandom::SysRng>;

const USAGE: &str =
    "usage: esession party --role alice|bob --stdio [--profile xep|gajim] [--jid JID] [--peer JID]
       [--modp 5,14] [--crypt aes128-ctr,...] [--hash sha256,...] [--identity KEY.pem] [--trust PUB.pem]
       [--oss SECRET] [--store DIR]";

struct Opts {
    alice: bool,
    profile: Profile,
    jid: String,
    peer: String,
    modp: Option<Vec<ModpGroup>>,
    crypt: Option<Vec<CryptAlg>>,
    hash: Option<Vec<HashAlg>>,
    identity: Option<String>,
    trust: Vec<String>,
    oss: Option<String>,
    store: Option<std::path::PathBuf>,
}

fn list<T: core::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    s.split(',').map(|v| v.trim().parse().map_err(|_| format!("--{what}: unknown value {v:?}"))).collect()
}

fn parse_opts(args: &[&str]) -> Result<Opts, String> {
    let mut role = None;
    let mut stdio = false;
    let mut o = Opts {
        alice: true,
        profile: Profile::Xep,
        jid: String::new(),
        peer: String::new(),
        modp: None,
        crypt: None,
        hash: None,
        identity: None,
        trust: Vec::new(),
        oss: None,
        store: None,
    };
    let (mut jid, mut peer) = (None, None);
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        let mut val = || it.next().copied().ok_or_else(|| format!("{a} needs a value"));
        match a {
            "--role" => role = Some(val()?.to_owned()),
            "--stdio" => stdio = true,
            "--profile" => o.profile = val()?.parse().map_err(|_| "--profile: xep or gajim".to_owned())?,
            "--jid" => jid = Some(val()?.to_owned()),
            "--peer" => peer = Some(val()?.to_owned()),
            "--modp" => o.modp = Some(list(val()?, "modp")?),
            "--crypt" => o.crypt = Some(list(val()?, "crypt")?),
            "--hash" => o.hash = Some(list(val()?, "hash")?),
            "--identity" => o.identity = Some(val()?.to_owned()),
            "--trust" => o.trust.push(val()?.to_owned()),
            "--oss" => o.oss = Some(val()?.to_owned()),
            "--store" => o.store = Some(val()?.into()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !stdio {
        return Err("only --stdio is supported".into());
    }
    o.alice = match role.as_deref() {
        Some("alice") => true,
        Some("bob") => false,
        _ => return Err("--role alice|bob is required".into()),
    };
    let (a, b) = ("alice@example.org/pda".to_owned(), "bob@example.com/laptop".to_owned());
    let (me, them) = if o.alice { (a, b) } else { (b, a) };
    o.jid = jid.unwrap_or(me);
    o.peer = peer.unwrap_or(them);
    Ok(o)
}

pub(crate) fn main(args: &[&str]) -> ExitCode {
    let opts = match parse_opts(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut party = match Party::new(opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("esession party: {e}");
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if !party.line(line) {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn out(stanza: &Element) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "OUT {}", String::from(stanza));
    let _ = o.flush();
}

fn evt(v: Value) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "EVT {v}");
    let _ = o.flush();
}

fn error(condition: &str, detail: &str) {
    evt(json!({"event": "error", "condition": condition, "detail": detail}));
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

enum Machine {
    None,
    Alice(Initiator),
    Bob(Responder),
}

struct Party {
    opts: Opts,
    cfg: Arc<Config>,
    trust: Box<dyn TrustStore>,
    retained: Box<dyn RetainedStore>,
    replay: Box<dyn ReplayStore>,
    machine: Machine,
    session: Option<Box<Established>>,
    sas: Option<String>,
    now: DateTime<Utc>,
    rng: Rng,
    thread: u64,
    // Offline, Alice.
    away: Option<Secrets>,
    queue: Vec<Element>,
    // Offline, Bob.
    fetched: Option<Element>,
    outbox: Outbox,
}

impl Party {
    fn new(opts: Opts) -> Result<Self, String> {
        let identity = match &opts.identity {
            Some(p) => {
                Some(PrivateKey::from_pkcs8_pem(&read(p)?).map_err(|e| format!("--identity {p}: {e}"))?)
            }
            None => None,
        };
        let mut cfg = match identity {
            Some(k) => Config::with_identity(k),
            None => Config::default(),
        };
        cfg.profile = opts.profile;
        if let Some(m) = &opts.modp {
            cfg.provider.modp = m.clone();
            cfg.support.crypto.modp = m.clone();
        }
        if let Some(c) = &opts.crypt {
            cfg.provider.crypt_algs = c.clone();
            cfg.support.crypto.crypt_algs = c.clone();
        }
        if let Some(h) = &opts.hash {
            cfg.provider.hash_algs = h.clone();
            cfg.support.crypto.hash_algs = h.clone();
        }
        if let Some(s) = &opts.oss {
            cfg.oss = Some(SecretBytes::new(s.as_bytes().to_vec()));
        }
        let mut keys = Vec::new();
        for p in &opts.trust {
            keys.push(PublicKey::from_public_key_pem(&read(p)?).map_err(|e| format!("--trust {p}: {e}"))?);
        }
        let peer = bare(&opts.peer).to_owned();
        let (trust, retained, replay): (Box<dyn TrustStore>, Box<dyn RetainedStore>, Box<dyn ReplayStore>) =
            match &opts.store {
                None => {
                    let mut t = MemoryTrust::default();
                    for k in keys {
                        t.trust(&peer, k);
                    }
                    (Box::new(t), Box::new(MemoryRetained::default()), Box::new(MemoryReplay::default()))
                }
                Some(dir) => durable(dir, &peer, keys)?,
            };
        let rng: Rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        Ok(Self {
            opts,
            cfg: Arc::new(cfg),
            trust,
            retained,
            replay,
            machine: Machine::None,
            session: None,
            sas: None,
            now: Utc::now(),
            rng,
            thread: 0,
            away: None,
            queue: Vec::new(),
            fetched: None,
            outbox: Outbox::new(),
        })
    }

    /// Handles one line; false ends the party.
    fn line(&mut self, line: &str) -> bool {
        if line.starts_with('<') {
            match esession_forms::xml::parse(line) {
                Ok(s) => self.stanza(s),
                Err(e) => error("bad-request", &format!("not a stanza: {e}")),
            }
            return true;
        }
        let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
        match cmd {
            "!quit" => return false,
            "!start" => self.start(arg.trim()),
            "!send" => self.send(chat_children(arg), false, false),
            "!rekey" => {
                let children = if arg.is_empty() { Vec::new() } else { chat_children(arg) };
                self.send(children, true, false)
            }
            "!old" => self.send(chat_children(arg), false, true),
            "!presence" => self.presence(arg.trim()),
            "!iq" => self.iq(arg),
            "!terminate" => self.terminate(),
            "!publish-offline" => self.publish_offline(arg),
            "!offline-send" => self.offline_send(arg, false),
            "!offline-terminate" => self.offline_send(arg, true),
            "!return" => self.come_back(),
            "!now" => match esession_offline::parse_xep0082(arg.trim())
                .or_else(|| DateTime::parse_from_rfc3339(arg.trim()).ok().map(|t| t.with_timezone(&Utc)))
            {
                Some(t) => self.now = t,
                None => error("bad-request", "!now needs an ISO-8601 time"),
            },
            "!state" => self.state(),
            other => error("bad-request", &format!("unknown command {other}")),
        }
        true
    }

    fn ts(&self) -> u64 {
        u64::try_from(self.now.timestamp()).unwrap_or(0)
    }

    fn new_thread(&mut self) -> String {
        self.thread += 1;
        let tag: String = {
            let mut b = [0u8; 8];
            rand_core::Rng::fill_bytes(&mut self.rng, &mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        };
        format!("esession-{tag}")
    }

    fn start(&mut self, arg: &str) {
        if !self.opts.alice {
            return error("bad-request", "!start is Alice's");
        }
        let mode = match arg {
            "3" => Mode::Three,
            "4" | "" => Mode::Four,
            _ => return error("bad-request", "!start 3|4"),
        };
        let thread = self.new_thread();
        let mut a = Initiator::new(self.cfg.clone(), &self.opts.peer, &thread);
        let r = a.start(mode, &mut RngEntropy(&mut self.rng));
        self.session = None;
        self.sas = None;
        self.machine = Machine::Alice(a);
        if let Err(e) = r {
            self.machine = Machine::None;
            return error("bad-request", &e.to_string());
        }
        self.drain();
    }

    /// Emits the machine's outputs.
    fn drain(&mut self) {
        loop {
            let o = match &mut self.machine {
                Machine::Alice(a) => a.poll_output(),
                Machine::Bob(b) => b.poll_output(),
                Machine::None => None,
            };
            let Some(o) = o else { return };
            match o {
                Output::Send(s) => out(&s),
                Output::SasReady(sas) => self.sas = Some(sas.to_string()),
                Output::Established(e) => {
                    let sas = e.sas.as_ref().map(ToString::to_string).or_else(|| self.sas.clone());
                    evt(json!({"event": "negotiated", "sas": sas, "thread": e.thread}));
                    self.session = Some(e);
                }
                Output::Rejected(e) => {
                    let condition = match &e {
                        esession_negotiate::Error::PeerMisbehaved { condition, .. } => {
                            condition.as_str().to_owned()
                        }
                        esession_negotiate::Error::Rejected { condition, .. } => {
                            condition.clone().unwrap_or_else(|| "rejected".into())
                        }
                        _ => "internal".into(),
                    };
                    error(&condition, &e.to_string());
                }
                Output::Alert(a) => evt(json!({"event": "alert", "alert": format!("{a:?}")})),
                Output::Received { content, unprotected } => {
                    unprotected_event(&unprotected);
                    message_event(&content);
                }
                Output::StanzaSession { security } => {
                    evt(json!({"event": "stanza-session", "security": security.to_string()}))
                }
                _ => {}
            }
        }
    }

    fn stanza(&mut self, mut s: Element) {
        // Without a server the relay delivers stanzas unstamped: they come from the peer.
        if s.attr("from").is_none() {
            set_attr(&mut s, "from", &self.opts.peer);
        }
        // Alice away: everything waits for `!return`.
        if self.away.is_some() {
            self.queue.push(s);
            return;
        }
        // Bob handed Alice's PEP publish (or an items result): the fetched options.
        if s.name() == "iq"
            && let Some(x) = pep::options_in(&s)
        {
            if !self.opts.alice {
                self.fetched = Some(x.clone());
                let ok = send::verify(x, &self.opts.peer, self.trust.as_ref(), self.now, self.opts.profile);
                evt(json!({"event": "offline-options", "ok": ok.is_ok(),
                    "check": ok.err().map(|e| e.to_string())}));
            }
            return;
        }
        let negotiation = Wrapper::find(&s).is_some();
        let in_progress = match &self.machine {
            Machine::Alice(a) => !a.is_done(),
            Machine::Bob(b) => !b.is_done(),
            Machine::None => false,
        };
        if negotiation && (in_progress || self.session.is_none() || !s.children().any(|c| c.name() == "c")) {
            if !in_progress {
                if self.opts.alice {
                    return error("unexpected-request", "Alice does not answer requests");
                }
                // A new request: a new responder (any earlier session is replaced).
                let thread = s.get_child("thread", "jabber:client").map(Element::text).unwrap_or_default();
                self.session = None;
                self.sas = None;
                self.machine = Machine::Bob(Responder::new(self.cfg.clone(), &self.opts.peer, &thread));
            }
            let ts = self.ts();
            let mut stores = Stores { trust: self.trust.as_mut(), retained: self.retained.as_mut() };
            let mut entropy = RngEntropy(&mut self.rng);
            let _ = match &mut self.machine {
                Machine::Alice(a) => a.handle(ts, &s, &mut entropy, &mut stores),
                Machine::Bob(b) => b.handle(ts, &s, &mut entropy, &mut stores),
                Machine::None => Ok(()),
            };
            self.drain();
            return;
        }
        if s.attr("type") == Some("error") {
            let cond = esession_negotiate::wire::error_of(&s)
                .and_then(|(c, _)| c)
                .unwrap_or_else(|| "undefined-condition".into());
            return error(&cond, "error stanza from the peer");
        }
        let Some(est) = self.session.as_mut() else {
            return error("no-session", "no session for this stanza");
        };
        match est.receive(&s, false, &mut self.rng) {
            Ok(Received::Stanza { stanza, unprotected }) => {
                unprotected_event(&unprotected);
                message_event(&stanza);
            }
            Ok(Received::Terminated { ack, verified }) => {
                if let Some(a) = ack {
                    out(&a);
                }
                evt(json!({"event": "terminated", "verified": verified}));
                self.session = None;
            }
            Ok(_) => {}
            Err(e) => {
                let condition = match &e {
                    esession_negotiate::Error::Stanza(se) => {
                        se.condition().unwrap_or("not-acceptable").to_owned()
                    }
                    _ => "not-acceptable".into(),
                };
                error(&condition, &e.to_string());
                if est.session.is_closed() {
                    self.session = None;
                }
            }
        }
    }

    fn send(&mut self, children: Vec<Element>, rekey: bool, publish_old: bool) {
        let Some(est) = self.session.as_mut() else { return error("no-session", "no established session") };
        let mut m = esession_negotiate::wire::message(&est.peer, &est.thread, children);
        set_attr(&mut m, "type", "chat");
        match est.encrypt(&m, EncryptOptions { rekey, publish_old }, &mut self.rng) {
            Ok(w) => out(&w),
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn presence(&mut self, show: &str) {
        let Some(est) = self.session.as_mut() else { return error("no-session", "no established session") };
        let mut p = Element::bare("presence", "jabber:client");
        set_attr(&mut p, "to", &est.peer);
        if !show.is_empty() {
            p.append_child(Element::builder("show", "jabber:client").append(show).build());
        }
        match est.encrypt(&p, EncryptOptions::default(), &mut self.rng) {
            Ok(w) => out(&w),
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn iq(&mut self, xml: &str) {
        let Some(est) = self.session.as_mut() else { return error("no-session", "no established session") };
        // An iq written without a namespace is a client stanza.
        let xml = xml.trim();
        let root_tag = xml.split('>').next().unwrap_or("");
        let xml = match xml.strip_prefix("<iq") {
            Some(rest) if !root_tag.contains("xmlns=") => format!("<iq xmlns='jabber:client'{rest}"),
            _ => xml.to_owned(),
        };
        let mut iq = match esession_forms::xml::parse(&xml) {
            Ok(e) if e.name() == "iq" => e,
            Ok(_) | Err(_) => return error("bad-request", "!iq needs an <iq/> element"),
        };
        if iq.attr("to").is_none() {
            set_attr(&mut iq, "to", &est.peer);
        }
        match est.encrypt(&iq, EncryptOptions::default(), &mut self.rng) {
            Ok(w) => out(&w),
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn terminate(&mut self) {
        if let Some(est) = self.session.as_mut() {
            match est.terminate(false, &mut self.rng) {
                Ok(w) => out(&w),
                Err(e) => error("internal", &e.to_string()),
            }
            return;
        }
        // Bob with an offline session open: end it.
        match self.outbox.contact_online(&self.opts.peer, &mut self.rng) {
            Ok(Some(w)) => {
                out(&w);
                evt(json!({"event": "terminated", "offline": true}));
            }
            Ok(None) => error("no-session", "no session to terminate"),
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn publish_offline(&mut self, arg: &str) {
        if !self.opts.alice {
            return error("bad-request", "!publish-offline is Alice's");
        }
        let mut words = arg.split_whitespace();
        let seconds: i64 = words.next().and_then(|s| s.parse().ok()).unwrap_or(86_400);
        let resource = words.next().map(str::to_owned);
        let keys = match &self.opts.identity {
            Some(p) => {
                match read(p).and_then(|t| PrivateKey::from_pkcs8_pem(&t).map_err(|e| e.to_string())) {
                    Ok(k) => vec![k],
                    Err(e) => return error("internal", &e),
                }
            }
            None => return error("bad-request", "offline options need --identity"),
        };
        let plan = Plan {
            profile: self.opts.profile,
            provider: self.cfg.provider.clone(),
            logging: self.cfg.logging.clone(),
            compress: vec![esession_forms::names::Compress::None],
            stanzas: self.cfg.stanzas.iter().filter(|s| **s != StanzaType::Iq).cloned().collect(),
            rekey_freq: self.cfg.rekey_freq,
            keys,
            lifetime: chrono::Duration::seconds(seconds),
            match_resource: resource,
        };
        match go_offline(&plan, &[Audience::Subscribers], self.now, &mut RngEntropy(&mut self.rng)) {
            Ok(mut sets) => {
                let Some(p) = sets.pop() else { return error("internal", "nothing published") };
                // The publish IQ (with publish-options, so the node is configured even if new).
                if let Some(publish) = p.iqs.last() {
                    out(publish);
                }
                evt(json!({"event": "published", "expires": esession_offline::xep0082(p.secrets.expires)}));
                self.away = Some(p.secrets);
                self.session = None;
            }
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn offline_send(&mut self, text: &str, terminate: bool) {
        if self.opts.alice {
            return error("bad-request", "offline sending is Bob's");
        }
        let content = Element::builder("message", "jabber:client")
            .append(Element::builder("body", "jabber:client").append(text))
            .build();
        if self.outbox.has_session(&self.opts.peer) {
            match self.outbox.send(&self.opts.peer, &content, &mut self.rng) {
                Ok(w) => out(&w),
                Err(e) => return error("internal", &e.to_string()),
            }
            if terminate {
                self.terminate();
            }
            return;
        }
        let Some(x) = self.fetched.clone() else { return error("no-options", "no offline options fetched") };
        let v = match send::verify(&x, &self.opts.peer, self.trust.as_ref(), self.now, self.opts.profile) {
            Ok(v) => v,
            Err(e) => return error("silent", &e.to_string()),
        };
        let thread = self.new_thread();
        match self.outbox.start(
            &v,
            &self.cfg,
            &thread,
            Some(content),
            terminate,
            self.now,
            &mut RngEntropy(&mut self.rng),
        ) {
            Ok(w) => {
                out(&w);
                evt(json!({"event": "negotiated", "sas": null, "offline": true, "thread": thread}));
                if terminate {
                    evt(json!({"event": "terminated", "offline": true}));
                }
            }
            Err(e) => error("silent", &e.to_string()),
        }
    }

    fn come_back(&mut self) {
        let Some(secrets) = self.away.take() else { return error("bad-request", "not away") };
        let queue = std::mem::take(&mut self.queue);
        let r = come_back(
            Some(secrets),
            None,
            &queue,
            self.now,
            self.opts.profile,
            self.trust.as_ref(),
            self.replay.as_mut(),
            &mut self.rng,
        );
        let r = match r {
            Ok(r) => r,
            Err(e) => return error("internal", &e.to_string()),
        };
        out(&r.withdraw);
        let mut events: Vec<(usize, Value)> = Vec::new();
        for d in &r.dropped {
            events
                .push((d.index, json!({"event": "error", "condition": "silent", "check": d.check.as_str()})));
        }
        for a in r.sessions {
            evt(json!({"event": "negotiated", "sas": null, "offline": true, "thread": a.session.thread}));
            unprotected_event(&a.unprotected);
            for c in &a.contents {
                message_event(c);
            }
            if a.ended {
                evt(json!({"event": "terminated", "offline": true}));
            }
        }
        events.sort_by_key(|(i, _)| *i);
        for (_, e) in events {
            evt(e);
        }
        // Other stanzas queued while away are processed now, in order.
        for i in r.other {
            if let Some(s) = queue.get(i) {
                self.stanza(s.clone());
            }
        }
    }

    fn state(&self) {
        let phase = match &self.session {
            Some(e) => format!("{:?}", e.phase()).to_lowercase(),
            None => match &self.machine {
                Machine::Alice(a) if !a.is_done() => "negotiating".into(),
                Machine::Bob(b) if !b.is_done() => "negotiating".into(),
                _ => "idle".into(),
            },
        };
        evt(json!({
            "event": "state",
            "role": if self.opts.alice { "alice" } else { "bob" },
            "jid": self.opts.jid,
            "peer": self.opts.peer,
            "established": self.session.is_some(),
            "phase": phase,
            "sas": self.session.as_ref().and_then(|e| e.sas.as_ref().map(ToString::to_string)),
            "away": self.away.is_some(),
            "queued": self.queue.len(),
            "offline_session": self.outbox.has_session(&self.opts.peer),
            "now": esession_offline::xep0082(self.now),
        }));
    }
}

fn set_attr(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
    }
}

fn chat_children(text: &str) -> Vec<Element> {
    vec![Element::builder("body", "jabber:client").append(text).build()]
}

/// Children that came in clear beside `<c/>` and were dropped: reported on their own, never
/// as part of a message.
fn unprotected_event(elements: &[String]) {
    if !elements.is_empty() {
        evt(json!({"event": "unprotected", "elements": elements}));
    }
}

fn message_event(clear: &Element) {
    // An empty re-key stanza carries nothing for the application.
    if clear.children().all(|c| c.name() == "thread") {
        return;
    }
    let body = clear.get_child("body", "jabber:client").map(Element::text);
    match clear.name() {
        "message" => evt(json!({"event": "message", "body": body})),
        "presence" => evt(json!({"event": "presence",
            "show": clear.get_child("show", "jabber:client").map(Element::text)})),
        other => evt(json!({"event": other, "xml": String::from(clear)})),
    }
}

type DurableTriple = (Box<dyn TrustStore>, Box<dyn RetainedStore>, Box<dyn ReplayStore>);

/// The durable stores in `DIR/esession.redb`, sealed with the key in `DIR/seal.key` (32 random
/// octets created on first use, readable by the owner only).
fn durable(dir: &std::path::Path, peer: &str, keys: Vec<PublicKey>) -> Result<DurableTriple, String> {
    use esession_negotiate::durable::DurableStore;
    std::fs::create_dir_all(dir).map_err(|e| format!("--store {}: {e}", dir.display()))?;
    let key_path = dir.join("seal.key");
    let key = match std::fs::read(&key_path) {
        Ok(k) => k,
        Err(_) => {
            let mut k = vec![0u8; 32];
            let mut rng: Rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
            rand_core::Rng::fill_bytes(&mut rng, &mut k);
            write_private(&key_path, &k)?;
            k
        }
    };
    let sealing =
        || esession_crypto::SealingKey::from_bytes(SecretBytes::new(key.clone())).map_err(|e| e.to_string());
    let seal_rng = || -> esession_negotiate::durable::SealRng {
        Box::new(getrandom::rand_core::UnwrapErr(getrandom::SysRng))
    };
    // One database file; the trust role and the retained-secret role each get their own handle
    // (each writes only its own tables), and the replay store shares the file.
    let mut trust =
        DurableStore::open(&dir.join("esession.redb"), sealing()?, seal_rng()).map_err(|e| e.to_string())?;
    for k in keys {
        trust.trust(peer, k).map_err(|e| e.to_string())?;
    }
    let db = trust.database();
    let retained =
        DurableStore::with_database(db.clone(), sealing()?, seal_rng()).map_err(|e| e.to_string())?;
    let replay = esession_offline::replay::durable::DurableReplay::new(db).map_err(|e| e.to_string())?;
    Ok((Box::new(trust), Box::new(retained), Box::new(replay)))
}

fn write_private(path: &std::path::Path, data: &[u8]) -> Result<(), String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}
