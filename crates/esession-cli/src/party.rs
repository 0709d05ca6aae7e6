//! `esession party --role alice|bob --stdio [options]`: one party driven by lines on stdin, for
//! interop tests (ARCHITECTURE.md "CLI and harness interfaces", docs/party.md).
//!
//! A line parser and an event printer on [`Engine`], the same engine the XMPP client uses: no
//! routing or policy of its own. Input lines: stanza XML (delivered to this party), or a command:
//! `!start 3|4 [TEXT]`, `!send TEXT`, `!rekey [TEXT]`, `!old TEXT`, `!presence SHOW`,
//! `!iq XML`, `!terminate`, `!publish-offline [SECONDS [RESOURCE]]`, `!offline-send TEXT`,
//! `!offline-terminate TEXT`, `!return`, `!now ISO-8601`, `!state`, `!quit`.
//!
//! Output lines, in order: `OUT <stanza>` (for the peer, or for the server: a relay routes them)
//! and `EVT {json}`. Every line is flushed as it is written; `!state` answers after everything
//! the earlier lines caused.

use chrono::{DateTime, Utc};
use esession_crypto::{CryptAlg, HashAlg, ModpGroup, PrivateKey, Profile, PublicKey, SecretBytes, SignAlg};
use esession_forms::names::{Logging, PubkeyMethod, StanzaType};
use esession_negotiate::{Config, Mode, Phase};
use esession_offline::publish::Secrets;
use esession_offline::{Audience, pep};
use esession_stanza::EncryptOptions;
use esession_xmpp::{Account, BareJid, Ended, Engine, Event, Jid, Limits, Sealing, Step, parse_jid};
use minidom::Element;
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::ExitCode;

const USAGE: &str =
    "usage: esession party --role alice|bob --stdio [--profile xep|gajim] [--jid JID] [--peer JID]
       [--modp 5,14] [--crypt aes128-ctr,...] [--hash sha256,...] [--sign rsa,dsa] [--identity KEY.pem]
       [--trust PUB.pem] [--petname NAME] [--oss SECRET] [--store DIR] [--offer-init-pubkey none,key,hash]
       [--offer-resp-pubkey none,key,hash] [--stanzas message,presence,iq] [--logging may,mustnot]
       [--rekey-freq N] [--max-line OCTETS]";

/// The longest input line read (a stanza): longer lines are refused unread.
const MAX_LINE: usize = 1 << 20;

struct Opts {
    alice: bool,
    profile: Profile,
    jid: Jid,
    peer: Jid,
    modp: Option<Vec<ModpGroup>>,
    crypt: Option<Vec<CryptAlg>>,
    hash: Option<Vec<HashAlg>>,
    sign: Option<Vec<SignAlg>>,
    init_pubkey: Option<Vec<PubkeyMethod>>,
    resp_pubkey: Option<Vec<PubkeyMethod>>,
    stanzas: Option<Vec<StanzaType>>,
    logging: Option<Vec<Logging>>,
    rekey_freq: Option<u32>,
    identity: Option<String>,
    trust: Vec<String>,
    /// The petname given to the `--trust` keys (shown before the peer's JID).
    petname: Option<String>,
    oss: Option<String>,
    store: Option<std::path::PathBuf>,
    max_line: usize,
}

fn list<T: core::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    s.split(',').map(|v| v.trim().parse().map_err(|_| format!("--{what}: unknown value {v:?}"))).collect()
}

/// Known values only: a typo must not become an offer of an unknown name.
fn known<T: core::str::FromStr + ToString>(
    s: &str,
    what: &str,
    ok: impl Fn(&T) -> bool,
) -> Result<Vec<T>, String> {
    let v: Vec<T> = list(s, what)?;
    match v.iter().find(|x| !ok(x)) {
        Some(x) => Err(format!("--{what}: unknown value {:?}", x.to_string())),
        None => Ok(v),
    }
}

fn signs(s: &str) -> Result<Vec<SignAlg>, String> {
    s.split(',')
        .map(|v| match v.trim() {
            "rsa" => Ok(SignAlg::RsaSha256),
            "dsa" => Ok(SignAlg::DsaSha256),
            other => other
                .parse::<SignAlg>()
                .ok()
                .filter(SignAlg::is_supported)
                .ok_or_else(|| format!("--sign: unknown value {other:?} (rsa, dsa)")),
        })
        .collect()
}

fn parse_opts(args: &[&str]) -> Result<Opts, String> {
    let mut role = None;
    let mut stdio = false;
    let mut o = Opts {
        alice: true,
        profile: Profile::Xep,
        jid: Jid::new("a@b").map_err(|e| e.to_string())?,
        peer: Jid::new("a@b").map_err(|e| e.to_string())?,
        modp: None,
        crypt: None,
        hash: None,
        sign: None,
        init_pubkey: None,
        resp_pubkey: None,
        stanzas: None,
        logging: None,
        rekey_freq: None,
        identity: None,
        trust: Vec::new(),
        petname: None,
        oss: None,
        store: None,
        max_line: MAX_LINE,
    };
    let (mut jid, mut peer) = (None, None);
    let mut it = args.iter();
    let methods =
        |s: &str, what: &str| known::<PubkeyMethod>(s, what, |m| !matches!(m, PubkeyMethod::Unknown(_)));
    while let Some(&a) = it.next() {
        let mut val = || it.next().copied().ok_or_else(|| format!("{a} needs a value"));
        match a {
            "--role" => role = Some(val()?.to_owned()),
            "--stdio" => stdio = true,
            "--profile" => o.profile = val()?.parse().map_err(|_| "--profile: xep or gajim".to_owned())?,
            "--jid" => jid = Some(val()?.to_owned()),
            "--peer" => peer = Some(val()?.to_owned()),
            "--modp" => o.modp = Some(known(val()?, "modp", |g: &ModpGroup| g.is_supported())?),
            "--crypt" => o.crypt = Some(known(val()?, "crypt", CryptAlg::is_supported)?),
            "--hash" => o.hash = Some(known(val()?, "hash", HashAlg::is_supported)?),
            "--sign" => o.sign = Some(signs(val()?)?),
            "--offer-init-pubkey" => o.init_pubkey = Some(methods(val()?, "offer-init-pubkey")?),
            "--offer-resp-pubkey" => o.resp_pubkey = Some(methods(val()?, "offer-resp-pubkey")?),
            "--stanzas" => {
                o.stanzas =
                    Some(known(val()?, "stanzas", |s: &StanzaType| !matches!(s, StanzaType::Unknown(_)))?)
            }
            "--logging" => {
                o.logging = Some(known(val()?, "logging", |l: &Logging| !matches!(l, Logging::Unknown(_)))?)
            }
            "--rekey-freq" => {
                o.rekey_freq = Some(
                    val()?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("--rekey-freq: a number from 1 to 2^32 - 1")?,
                )
            }
            "--identity" => o.identity = Some(val()?.to_owned()),
            "--trust" => o.trust.push(val()?.to_owned()),
            "--petname" => o.petname = Some(val()?.to_owned()),
            "--oss" => o.oss = Some(val()?.to_owned()),
            "--store" => o.store = Some(val()?.into()),
            "--max-line" => {
                o.max_line = val()?.parse().map_err(|_| "--max-line: a number of octets".to_owned())?
            }
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
    let (a, b) = ("alice@example.org/pda", "bob@example.com/laptop");
    let (me, them) = if o.alice { (a, b) } else { (b, a) };
    let parse = |s: &str, what: &str| parse_jid(s).map_err(|e| format!("--{what}: {e}"));
    o.jid = parse(jid.as_deref().unwrap_or(me), "jid")?;
    o.peer = parse(peer.as_deref().unwrap_or(them), "peer")?;
    Ok(o)
}

pub(crate) fn main(args: &[&str]) -> ExitCode {
    if args.iter().any(|a| matches!(*a, "--help" | "-h")) {
        println!("{USAGE}\nThe line protocol: docs/party.md.");
        return ExitCode::SUCCESS;
    }
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
    let mut input = stdin.lock();
    loop {
        match read_line(&mut input, party.opts.max_line) {
            Ok(Line::End) => return ExitCode::SUCCESS,
            Ok(Line::TooLong(n)) => {
                error("policy-violation", &format!("line of more than {n} octets refused unread"))
            }
            Ok(Line::NotUtf8) => error("bad-request", "the line is not UTF-8"),
            Ok(Line::Text(line)) => {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() {
                    continue;
                }
                if !party.line(line) {
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) => {
                eprintln!("esession party: reading stdin: {e}");
                return ExitCode::from(1);
            }
        }
    }
}

enum Line {
    Text(String),
    TooLong(usize),
    NotUtf8,
    End,
}

/// Reads one line of at most `max` octets; a longer one is skipped to its end without being
/// kept (a 10 MB line costs the time to read it, not the memory).
fn read_line(r: &mut impl BufRead, max: usize) -> std::io::Result<Line> {
    let mut buf: Vec<u8> = Vec::new();
    let mut too_long = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            if buf.is_empty() && !too_long {
                return Ok(Line::End);
            }
            break;
        }
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long {
            if buf.len() + part.len() > max {
                too_long = true;
                buf = Vec::new();
            } else {
                buf.extend_from_slice(part);
            }
        }
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            break;
        }
    }
    if too_long {
        return Ok(Line::TooLong(max));
    }
    match String::from_utf8(buf) {
        Ok(s) => Ok(Line::Text(s)),
        Err(_) => Ok(Line::NotUtf8),
    }
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

struct Party {
    opts: Opts,
    engine: Engine,
    /// The clock: the wall clock, moved by `!now`.
    offset: chrono::Duration,
    /// Alice away: the secrets of her published options.
    away: Option<Secrets>,
    /// `!start 4 TEXT`: TEXT goes in the session as soon as it is established.
    after_negotiation: Option<String>,
}

impl Party {
    fn new(opts: Opts) -> Result<Self, String> {
        let identity = match &opts.identity {
            Some(p) => {
                Some(PrivateKey::from_pkcs8_pem(&read(p)?).map_err(|e| format!("--identity {p}: {e}"))?)
            }
            None => None,
        };
        let cfg = config(&opts, identity);
        let mut keys = Vec::new();
        for p in &opts.trust {
            keys.push(PublicKey::from_public_key_pem(&read(p)?).map_err(|e| format!("--trust {p}: {e}"))?);
        }
        let peer = opts.peer.to_bare();
        // One way of opening an account's stores: the same `Account` the XMPP client uses,
        // in a data directory (`--store`) or in memory.
        let account = match &opts.store {
            Some(dir) => open_store(dir)?,
            None => Account::in_memory().map_err(|e| e.to_string())?,
        };
        let store_err = |e: esession_xmpp::Error| match &opts.store {
            Some(dir) => format!("--store {}: {e}", dir.display()),
            None => e.to_string(),
        };
        for k in keys {
            account.trust(&peer, k.clone()).map_err(store_err)?;
            if let Some(name) = &opts.petname {
                account.set_petname(&k, name).map_err(store_err)?;
            }
        }
        let stores = account.stores().map_err(store_err)?;
        let mut engine = Engine::new(cfg, stores);
        // The harness is driven by one peer: its requests are never rate-limited (a flood
        // from it replaces its own negotiation; memory stays flat), and it is never cut off
        // for failing (every input line gets its answer).
        engine.set_limits(
            Limits::default().with_requests_per_minute(u32::MAX).with_failures_per_minute(u32::MAX),
        );
        Ok(Self { opts, engine, offset: chrono::Duration::zero(), away: None, after_negotiation: None })
    }

    fn now(&self) -> DateTime<Utc> {
        // `!now` takes four-digit years only: the sum stays far inside what a date holds.
        Utc::now().checked_add_signed(self.offset).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn peer_bare(&self) -> BareJid {
        self.opts.peer.to_bare()
    }

    /// Handles one line; false ends the party.
    fn line(&mut self, line: &str) -> bool {
        if line.starts_with('<') {
            self.stanza(line);
            return true;
        }
        let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
        match cmd {
            "!quit" => return false,
            "!start" => self.start(arg.trim_start()),
            "!send" => self.send(arg, EncryptOptions::default()),
            "!rekey" => self.send(arg, EncryptOptions { rekey: true, publish_old: false }),
            "!old" => self.send(arg, EncryptOptions { rekey: false, publish_old: true }),
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
                Some(t) => {
                    self.offset = t - Utc::now();
                    // The engine expires by `now` when an input arrives; a clock moved with
                    // nothing arriving expires what waited too long now, so that `!state`
                    // tells the truth (a negotiation past its timeout is over).
                    let step = self.engine.tick(self.now());
                    self.emit(step);
                }
                None => error("bad-request", "!now needs an ISO-8601 time"),
            },
            "!state" => self.state(),
            other => error("bad-request", &format!("unknown command {other}")),
        }
        true
    }

    /// Prints a step: its stanzas, then its events.
    fn emit(&mut self, step: Step) {
        for s in &step.send {
            out(s);
        }
        for e in step.events {
            self.event(e);
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Negotiated { ref peer, ref thread, ref sas, offline, .. } => {
                evt(json!({
                    "event": "negotiated",
                    "sas": sas.as_ref().map(ToString::to_string),
                    "thread": thread,
                    "offline": offline,
                    // X116-7.4-05: the petname first, the JID after it.
                    "peer": e.who(),
                }));
                if let Some(text) = self.after_negotiation.take() {
                    let bare = peer.to_bare();
                    match self.engine.chat(&bare, &text, EncryptOptions::default()) {
                        Ok(w) => out(&w),
                        Err(e) => error("internal", &e.to_string()),
                    }
                }
            }
            Event::Message { ref stanza, ref clear, .. } => message_event(stanza, clear, e.who()),
            Event::Unprotected { elements, .. } => evt(json!({"event": "unprotected", "elements": elements})),
            Event::Clear { stanza, .. } => evt(json!({
                "event": "clear",
                "stanza": stanza.name(),
                "body": stanza.get_child("body", "jabber:client").map(Element::text),
            })),
            Event::Alert { alert, .. } => {
                evt(json!({"event": "alert", "kind": alert.kind(), "alert": alert.to_string()}))
            }
            Event::Terminated { offline: true, .. } => evt(json!({"event": "terminated", "offline": true})),
            Event::Terminated { why, .. } => {
                // `verified`: the session ended by a terminate (or its acknowledgement) that
                // was authenticated, inside the verified content. Every other end is not: a
                // clear terminate, a stanza that failed verification (a MAC failure, a
                // replay), an error, a presence, a replacement, a timeout.
                let verified =
                    matches!(why, Ended::ByPeer { verified: true } | Ended::Acknowledged | Ended::Object);
                evt(json!({"event": "terminated", "verified": verified, "why": format!("{why:?}")}))
            }
            Event::Failed { failure: esession_xmpp::Failure::Offline(c), .. } => {
                evt(json!({"event": "error", "condition": "silent", "check": c.as_str()}))
            }
            Event::Failed { failure, .. } => error(failure.condition(), &failure.to_string()),
            Event::StanzaSession { security, .. } => {
                evt(json!({"event": "stanza-session", "security": security.to_string()}))
            }
            Event::OfflineOptions { refused, .. } => evt(
                json!({"event": "offline-options", "ok": refused.is_none(), "check": refused.map(|c| c.as_str())}),
            ),
            Event::Presence { peer, available } => {
                evt(json!({"event": "contact-presence", "peer": peer.to_string(), "available": available}))
            }
            Event::Iq { stanza } => {
                // Requests the engine does not serve: refused, as a client would.
                out(&esession_xmpp::engine::iq_error(&stanza, "service-unavailable"));
            }
            _ => {}
        }
    }

    fn stanza(&mut self, line: &str) {
        let mut s = match esession_forms::xml::parse_with(line, self.engine.limits().stanza) {
            Ok(s) => s,
            Err(esession_forms::Error::TooLarge(what)) => {
                return error("policy-violation", &format!("stanza refused unread: too large ({what})"));
            }
            Err(e) => return error("bad-request", &format!("not a stanza: {e}")),
        };
        // Without a server the relay delivers stanzas unstamped: they come from the peer.
        if s.attr("from").is_none() {
            esession_xmpp_set_attr(&mut s, "from", self.opts.peer.as_str());
        }
        // Bob handed Alice's PEP publish (or an items result): the fetched options.
        if !self.opts.alice
            && s.name() == "iq"
            && let Some(x) = pep::options_in(&s)
        {
            let now = self.now();
            let e = self.engine.offline_options(now, &self.peer_bare(), x);
            self.event(e);
            return;
        }
        let now = self.now();
        let step = self.engine.handle(now, &s);
        esession_forms::xml::dispose(s);
        self.emit(step);
    }

    fn start(&mut self, arg: &str) {
        if !self.opts.alice {
            return error("bad-request", "!start is Alice's");
        }
        let (mode, text) = arg.split_once(' ').unwrap_or((arg, ""));
        let mode = match mode {
            "3" => Mode::Three,
            "4" | "" => Mode::Four,
            _ => return error("bad-request", "!start 3|4 [TEXT]"),
        };
        let content = (!text.is_empty()).then(|| chat(&self.opts.peer, text));
        let piggyback = match (mode, content) {
            // The 3-message accept carries content (XEP-0116 §4.6.4).
            (Mode::Three, Some(c)) => Some((c, false)),
            // No 4-message message of Alice's can: the text follows the negotiation.
            (Mode::Four, Some(_)) => {
                self.after_negotiation = Some(text.to_owned());
                None
            }
            (_, None) => None,
        };
        let now = self.now();
        let peer = self.opts.peer.clone();
        match self.engine.start_with(now, &peer, mode, piggyback) {
            Ok(step) => self.emit(step),
            Err(e) => error("bad-request", &e.to_string()),
        }
    }

    fn send(&mut self, text: &str, opts: EncryptOptions) {
        let bare = self.peer_bare();
        // `!rekey` without text: an empty re-key stanza.
        match self.engine.chat(&bare, text, opts) {
            Ok(w) => out(&w),
            Err(esession_xmpp::Error::NotProtected(_)) => error("no-session", "no established session"),
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn protect(&mut self, stanza: &Element) {
        match self.engine.protect(stanza, EncryptOptions::default()) {
            Ok(w) => out(&w),
            Err(esession_xmpp::Error::NotProtected(_)) => error("no-session", "no established session"),
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn presence(&mut self, show: &str) {
        let Some(to) = self.engine.session_peer(&self.peer_bare()).cloned() else {
            return error("no-session", "no established session");
        };
        let mut p = Element::bare("presence", "jabber:client");
        esession_xmpp_set_attr(&mut p, "to", to.as_str());
        if !show.is_empty() {
            p.append_child(Element::builder("show", "jabber:client").append(show).build());
        }
        self.protect(&p);
    }

    fn iq(&mut self, xml: &str) {
        let Some(to) = self.engine.session_peer(&self.peer_bare()).cloned() else {
            return error("no-session", "no established session");
        };
        // An iq written without a namespace is a client stanza; a payload alone goes into an
        // `<iq type='get'>`.
        let xml = xml.trim();
        let root_tag = xml.split('>').next().unwrap_or("");
        let xml = match xml.strip_prefix("<iq") {
            Some(rest) if !root_tag.contains("xmlns=") => format!("<iq xmlns='jabber:client'{rest}"),
            Some(_) => xml.to_owned(),
            None => format!("<iq xmlns='jabber:client' type='get' id='party-iq'>{xml}</iq>"),
        };
        let mut iq = match esession_forms::xml::parse(&xml) {
            Ok(e) if e.name() == "iq" => e,
            Ok(_) | Err(_) => return error("bad-request", "!iq needs an <iq/> element or its payload"),
        };
        if iq.attr("to").is_none() {
            esession_xmpp_set_attr(&mut iq, "to", to.as_str());
        }
        self.protect(&iq);
    }

    fn terminate(&mut self) {
        let bare = self.peer_bare();
        if self.engine.has_session(&bare) {
            match self.engine.terminate(&bare) {
                Ok(w) => out(&w),
                Err(e) => error("internal", &e.to_string()),
            }
            return;
        }
        // Bob with an offline session open: end it.
        if self.engine.has_offline_session(&bare) {
            let now = self.now();
            let step = self.engine.end_offline(now, &bare);
            return self.emit(step);
        }
        error("no-session", "no session to terminate");
    }

    fn publish_offline(&mut self, arg: &str) {
        if !self.opts.alice {
            return error("bad-request", "!publish-offline is Alice's");
        }
        let mut words = arg.split_whitespace();
        // The lifetime in seconds: positive, and within what a date can hold (the library
        // refuses an expiry past year 9999 or not in the future; this only has to parse).
        let lifetime = match words.next() {
            None => chrono::Duration::days(1),
            Some(w) => match w.parse::<i64>().ok().and_then(chrono::Duration::try_seconds) {
                Some(d) => d,
                None => {
                    return error(
                        "bad-request",
                        &format!("!publish-offline: {w:?} is not a lifetime in seconds (1 to about 10^11)"),
                    );
                }
            },
        };
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
        let plan = match self.engine.plan(keys, lifetime, resource) {
            Ok(p) => p,
            Err(e) => return error("bad-request", &e.to_string()),
        };
        let now = self.now();
        match self.engine.go_offline(now, &plan, &[Audience::Subscribers], true) {
            Err(esession_xmpp::Error::Offline(e @ esession_offline::Error::Config(_))) => {
                error("bad-request", &format!("!publish-offline: {e}"))
            }
            Ok((step, mut sets)) => {
                let Some(p) = sets.pop() else { return error("internal", "nothing published") };
                // The terminates of the sessions, then the publish IQ (with publish-options, so
                // the node is configured even if new).
                let publish = p.iqs.last().cloned();
                for s in step.send.iter().filter(|s| s.name() != "iq") {
                    out(s);
                }
                if let Some(publish) = publish {
                    out(&publish);
                }
                for e in step.events {
                    self.event(e);
                }
                evt(json!({"event": "published", "expires": esession_offline::xep0082(p.secrets.expires)}));
                self.away = Some(p.secrets);
            }
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn offline_send(&mut self, text: &str, terminate: bool) {
        if self.opts.alice {
            return error("bad-request", "offline sending is Bob's");
        }
        let bare = self.peer_bare();
        let content = chat(&self.opts.peer, text);
        if self.engine.has_offline_session(&bare) {
            let now = self.now();
            match self.engine.offline_send(now, &bare, &content) {
                Ok(w) => out(&w),
                Err(esession_xmpp::Error::Offline(esession_offline::Error::Refused(c))) => {
                    return evt(json!({"event": "error", "condition": "silent", "check": c.as_str()}));
                }
                Err(e) => return error("internal", &e.to_string()),
            }
            if terminate {
                let step = self.engine.end_offline(now, &bare);
                self.emit(step);
            }
            return;
        }
        if !self.engine.has_offline_options(&bare) {
            return error("no-options", "no offline options fetched");
        }
        let now = self.now();
        match self.engine.offline_start(now, &bare, content, terminate) {
            Ok(step) => self.emit(step),
            Err(esession_xmpp::Error::Offline(esession_offline::Error::Refused(c))) => {
                evt(json!({"event": "error", "condition": "silent", "check": c.as_str()}))
            }
            Err(e) => error("silent", &e.to_string()),
        }
    }

    fn come_back(&mut self) {
        let Some(secrets) = self.away.take() else { return error("bad-request", "not away") };
        let now = self.now();
        match self.engine.come_back(now, Some(secrets), None, false) {
            Ok(step) => self.emit(step),
            Err(e) => error("internal", &e.to_string()),
        }
    }

    fn state(&self) {
        let bare = self.peer_bare();
        let session = self.engine.session(&bare);
        let phase = match session.map(esession_negotiate::Established::phase) {
            Some(Phase::Active) => "active".to_owned(),
            Some(p) => format!("{p:?}").to_lowercase(),
            None if self.engine.negotiating(&bare) => "negotiating".into(),
            None => "idle".into(),
        };
        evt(json!({
            "event": "state",
            "role": if self.opts.alice { "alice" } else { "bob" },
            "jid": self.opts.jid.to_string(),
            "peer": self.opts.peer.to_string(),
            "established": session.is_some(),
            "phase": phase,
            "sas": session.and_then(|e| e.sas().map(ToString::to_string)),
            "away": self.engine.is_away(),
            "queued": self.engine.held(),
            "queue_dropped": self.engine.held_dropped(),
            "offline_session": self.engine.has_offline_session(&bare),
            "now": esession_offline::xep0082(self.now()),
        }));
    }
}

/// The party's configuration: its options become both what it offers (as Alice) and what it
/// accepts (as Bob). Options given explicitly are taken as asked, weak ones included.
fn config(o: &Opts, identity: Option<PrivateKey>) -> Config {
    let mut cfg = Config::new(o.profile);
    if let Some(k) = identity {
        cfg = cfg.identified_by(k);
    }
    if let Some(m) = &o.modp {
        cfg.provider.modp.clone_from(m);
        cfg.support.crypto.modp.clone_from(m);
    }
    if let Some(c) = &o.crypt {
        cfg.provider.crypt_algs.clone_from(c);
        cfg.support.crypto.crypt_algs.clone_from(c);
    }
    if let Some(h) = &o.hash {
        cfg.provider.hash_algs.clone_from(h);
        cfg.support.crypto.hash_algs.clone_from(h);
    }
    if let Some(s) = &o.sign {
        cfg.provider.sign_algs.clone_from(s);
        cfg.support.crypto.sign_algs.clone_from(s);
        cfg.support.own_keys.retain(|a| s.contains(a));
    }
    if let Some(m) = &o.init_pubkey {
        cfg.init_pubkey.clone_from(m);
        cfg.support.init_pubkey.clone_from(m);
    }
    if let Some(m) = &o.resp_pubkey {
        cfg.resp_pubkey.clone_from(m);
        cfg.support.resp_none = m.contains(&PubkeyMethod::None);
        if !m.iter().any(|x| matches!(x, PubkeyMethod::Key | PubkeyMethod::Hash)) {
            cfg.support.own_keys.clear();
        }
    }
    if let Some(s) = &o.stanzas {
        cfg.stanzas.clone_from(s);
        cfg.support.stanzas.clone_from(s);
    }
    if let Some(l) = &o.logging {
        cfg.logging.clone_from(l);
        cfg.support.logging.clone_from(l);
    }
    if let Some(n) = o.rekey_freq {
        cfg.rekey_freq = n;
        cfg.support.rekey_freq_min = n;
    }
    if let Some(s) = &o.oss {
        cfg.oss = Some(SecretBytes::new(s.as_bytes().to_vec()));
    }
    cfg
}

fn esession_xmpp_set_attr(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
    }
}

fn chat(to: &Jid, text: &str) -> Element {
    let mut m = Element::builder("message", "jabber:client")
        .append(Element::builder("body", "jabber:client").append(text))
        .build();
    esession_xmpp_set_attr(&mut m, "to", to.as_str());
    esession_xmpp_set_attr(&mut m, "type", "chat");
    m
}

/// A decrypted stanza; `who` names its sender as a person should see it (petname first).
fn message_event(stanza: &Element, clear_names: &[String], who: Option<String>) {
    // What the MAC covers is printed as the stanza; the children XEP-0200 §5 leaves in clear
    // (an `<amp/>`, an error stanza's `<error/>`) are printed apart, as "clear", never inside it.
    let is_clear =
        |c: &Element| clear_names.iter().any(|n| n == c.name() || n.ends_with(&format!("}}{}", c.name())));
    let mut protected = Element::bare(stanza.name(), stanza.ns());
    for ((ns, name), value) in stanza.attrs().iter() {
        protected.set_attr(ns.clone(), name.clone(), value.clone());
    }
    let mut clear = Vec::new();
    for c in stanza.children() {
        if is_clear(c) {
            clear.push(String::from(c));
        } else {
            protected.append_child(c.clone());
        }
    }
    let body = protected.get_child("body", "jabber:client").map(Element::text);
    let mut v = match protected.name() {
        "message" => json!({"event": "message", "body": body, "from": who}),
        "presence" => json!({"event": "presence",
            "show": protected.get_child("show", "jabber:client").map(Element::text), "from": who}),
        other => json!({"event": other, "xml": String::from(&protected), "from": who}),
    };
    if !clear.is_empty() {
        v["clear"] = json!(clear);
    }
    evt(v);
}

/// The account data directory `DIR` (docs/party.md `--store`): `DIR/esession.redb`, sealed
/// with the 32-octet key in `DIR/seal.key` (created on first use, readable by the owner only),
/// opened as [`Account::open`] opens it for the XMPP client. An account sealed with a
/// passphrase (`salt` and no `seal.key`) is refused before anything is written: the party
/// takes no passphrase, and a new `seal.key` would only fail to open it.
fn open_store(dir: &std::path::Path) -> Result<Account, String> {
    if dir.join("salt").exists() && !dir.join("seal.key").exists() {
        return Err(format!(
            "--store {}: this account's secrets are sealed with a passphrase, which the party does not take",
            dir.display()
        ));
    }
    Account::open(dir, Sealing::KeyFile).map_err(|e| format!("--store {}: {e}", dir.display()))
}
