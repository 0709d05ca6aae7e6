//! `esession chat PEER`: an interactive chat. Lines typed are sent (in the session with PEER, a
//! new one when the last ended and PEER is online, else an offline session when PEER published
//! options; each time the chat says which, or says that the line was not sent); lines starting
//! with `/` are commands and never sent (`/help`); every event is printed at once with the time;
//! the prompt shows the state (encrypted, verified). `/verify` is accepted only for the SAS the
//! chat has shown. Failures are reported and the chat goes on; it ends with `/quit`, Ctrl-C,
//! Ctrl-D, or SIGTERM/SIGHUP, ending its session and leaving cleanly.

use crate::account::{self, Settings};
use crate::exit::{Exit, Fail};
use crate::input::{self, Input, Printer};
use crate::show::{self, Place};
use esession_negotiate::{KeyState, Mode};
use esession_xmpp::{BareJid, Client, Delivery, Error, Event, Jid, fingerprint, parse_jid};
use std::time::Duration;

const HELP: &str = "\
commands (never sent; start a line with // to send one that begins with /):
  /help          this list
  /sas           show the SAS of the session (compare it with the contact out of band)
  /verify        the SAS you compared is the same on both sides: the contact is verified
  /fp            your key's fingerprint and the contact's
  /status        the session and the contact's presence
  /rekey         new keys for the session
  /end           end the session (the chat goes on)
  /add           ask to see the contact's presence
  /approve [JID] let JID (default: the contact) see your presence, and ask to see its presence
  /trust FP      trust the key FP (compare it first): of offline messages held unread (read
                 them), or the one the contact was refused for
  /refuse FP     drop the offline messages held for the key FP, unread
  /quit          end the session and leave (also Ctrl-C, Ctrl-D)";

enum Flow {
    Go,
    Quit,
}

/// The chat's opening line for a contact that is offline, from the check of its offline options
/// ([`Client::check_offline_options`]): what happens to the lines typed, truthfully. Nothing is
/// ever kept to be sent later: a line goes in an offline session (XEP-0187) or is not sent.
fn offline_opening(bare: &BareJid, check: Result<(), &Error>) -> String {
    match check {
        Ok(()) => format!(
            "* {bare} is offline: lines you type go in an offline session (XEP-0187), encrypted with the \
             offline options {bare} published; the server keeps them until {bare} comes back (you are \
             told when {bare} comes online)"
        ),
        Err(Error::NoOfflineOptions { .. }) => format!(
            "* {bare} is offline and has published no offline options: lines you type now are NOT sent, \
             and none is kept to be sent later; type them again once {bare} is online (you are told \
             when it comes online)"
        ),
        Err(e @ (Error::Timeout(_) | Error::Disconnected(_))) => format!(
            "* {bare} is offline; its offline options could not be fetched ({e}): a line you type goes in \
             an offline session if they can be fetched then, else it is NOT sent (you are told which)"
        ),
        Err(e) => format!(
            "* {bare} is offline, and its offline options cannot be used ({e}): lines you type now are \
             NOT sent, and none is kept to be sent later; type them again once {bare} is online (you are \
             told when it comes online)"
        ),
    }
}

struct Chat<'a> {
    s: &'a Settings,
    peer: Jid,
    bare: BareJid,
    /// The SAS last shown for the session with the peer.
    shown_sas: Option<String>,
    /// A presence of the peer came (available or not): we are subscribed to it.
    seen: bool,
    /// Our own connection is lost and not yet back ([`Event::Reconnected`]): what the engine
    /// last saw of the peer's presence is stale.
    down: bool,
    prompt: input::LivePrompt,
    out: Printer,
    /// The lines sent online lately, by stanza id: the one the server did not confirm before
    /// the connection was lost is named ([`Event::Unconfirmed`]).
    recent: std::collections::VecDeque<(String, String)>,
    /// The lines sent online since the peer's last message (at most 64): named when its client
    /// goes away without ending the session, since it may not have read them.
    since_reply: Vec<String>,
    /// The presence last shown for each resource of the peer: one notice per change.
    presence: PresenceShown,
}

/// The presence last shown per resource (at most 64 remembered): a server that sends the same
/// presence twice (a probe's answer and the broadcast, a reconnection) shows it once.
#[derive(Default)]
struct PresenceShown(std::collections::HashMap<Jid, bool>);

impl PresenceShown {
    /// Whether `available` for `peer` is news (then it is remembered).
    fn changed(&mut self, peer: &Jid, available: bool) -> bool {
        if self.0.get(peer) == Some(&available) {
            return false;
        }
        if self.0.len() >= 64 && !self.0.contains_key(peer) {
            self.0.clear();
        }
        self.0.insert(peer.clone(), available);
        true
    }

    /// Forgets everything (a new stream: the server sends every presence again).
    fn reset(&mut self) {
        self.0.clear();
    }
}

impl Chat<'_> {
    /// A line (or several) of words, each stamped with the time; JSON `kind` with `--json`.
    fn note(&self, kind: &str, text: &str) {
        if self.s.json {
            self.out.line(&show::note(kind, text, serde_json::json!({})).to_string());
        } else {
            for l in text.lines() {
                self.out.line(&format!("[{}] {l}", show::stamp()));
            }
        }
    }

    /// Whether we receive the peer's presence: the roster says so, or a presence came (the
    /// engine does not remember a contact that is offline and unknown to it).
    fn sees_presence(&self, client: &Client) -> bool {
        self.seen
            || client.watches(&self.bare)
            || client.engine().subscribed_to(&self.bare)
            || client.engine().is_available(&self.bare)
    }

    fn state(&self, client: &Client) -> &'static str {
        let e = client.engine();
        if self.down {
            "connection lost"
        } else if e.has_session(&self.bare) {
            if show::verified(client.engine(), &self.bare) {
                "encrypted, verified"
            } else if show::session_key(e, &self.bare).is_some_and(|(_, s)| s == KeyState::Pinned) {
                "encrypted, key pinned, NOT verified"
            } else {
                "encrypted, NOT verified"
            }
        } else if e.has_offline_session(&self.bare) {
            "offline session"
        } else if e.negotiating(&self.bare) {
            "negotiating"
        } else if e.is_available(&self.bare) {
            "online, no session"
        } else if client.presence_error(&self.bare).is_some() {
            "address not found?"
        } else if client.asked(&self.bare) {
            "asked, not approved yet"
        } else if self.sees_presence(client) {
            "offline, no session"
        } else {
            "no presence seen"
        }
    }

    /// The prompt: the contact and the state, right-aligned so that the prompt keeps one width
    /// (the editor repaints it while a line is typed).
    fn update_prompt(&self, client: &Client) {
        let state = format!("[{}]", self.state(client));
        self.prompt.set(format!("{} {state:>25}> ", self.bare));
    }

    /// Where lines go: the JID given, unless it names a resource that we see is gone while the
    /// contact is online elsewhere.
    fn target(&self, client: &Client) -> Jid {
        if self.peer.resource().is_some()
            && client.engine().subscribed_to(&self.bare)
            && !client.resources(&self.bare).contains(&self.peer)
        {
            return Jid::from(self.bare.clone());
        }
        self.peer.clone()
    }

    /// Shows a new session with the peer: its key and its SAS (the words of every session's
    /// start, [`show::started`]).
    fn announce(&mut self, client: &Client, sas: Option<String>) {
        let who = self.bare.to_string();
        let text = show::started(client.engine(), &self.bare, &who, sas.as_deref(), Place::Chat);
        if self.s.json {
            // The fields docs/xmpp.md promises for `session`, as `receive` gives them.
            let key = show::session_key(client.engine(), &self.bare);
            let peer =
                client.engine().session_peer(&self.bare).map_or_else(|| who.clone(), ToString::to_string);
            let extra = serde_json::json!({
                "peer": peer, "offline": false, "sas": sas,
                "fingerprint": key.as_ref().map(|k| k.0.clone()),
                "verified": key.as_ref().is_some_and(|k| k.1 == KeyState::Verified),
                "pinned": key.as_ref().is_some_and(|k| k.1 == KeyState::Pinned),
            });
            self.out.line(&show::note("session", &text, extra).to_string());
        } else {
            self.note("session", &text);
        }
        if sas.is_some() {
            self.shown_sas = sas;
        }
    }

    /// What the chat can do at the start, said plainly.
    async fn opening(&mut self, client: &mut Client) {
        if self.peer.resource().is_none() && !self.sees_presence(client) {
            // The server may answer its presence probe after the ping of the login: a moment for it.
            let b = self.bare.clone();
            let got = tokio::time::timeout(
                Duration::from_millis(1500),
                client.wait_for(|e| matches!(e, Event::Presence { peer, .. } if peer.to_bare() == b)),
            )
            .await;
            if let Ok(Ok(e)) = got {
                self.event(client, e).await;
            }
        }
        if self.peer.resource().is_some() || client.engine().is_available(&self.bare) {
            self.note("notice", &format!("* {} is online: negotiating an encrypted session…", self.bare));
            let target = self.target(client);
            match client.negotiate(&target, Mode::Four).await {
                Ok(sas) => self.announce(client, sas),
                Err(e) => {
                    let f = account::explain(client, &self.bare, self.seen, e);
                    self.note("not-started", &format!("!! no session: {f}"));
                }
            }
            return;
        }
        if !self.sees_presence(client) {
            self.note(
                "notice",
                &format!(
                    "* no presence of {b} has reached you: you may not be subscribed to it (/add asks {b} to \
                     share it), or {b} is offline and your server does not say so. Lines you type go in an \
                     offline session if {b} published offline options you may use, else they are not sent \
                     (you are told which)",
                    b = self.bare
                ),
            );
            return;
        }
        // Checked as a line would be (fetched and verified): the opening says what lines do.
        let check = client.check_offline_options(&self.bare).await;
        self.note("notice", &offline_opening(&self.bare, check.as_ref().map(|_| ())));
    }

    async fn send(&mut self, client: &mut Client, text: &str) {
        let had = client.engine().has_session(&self.bare);
        let had_offline = client.engine().has_offline_session(&self.bare);
        let target = self.target(client);
        let r = client.send_text(&target, text).await;
        self.update_prompt(client);
        match r {
            Ok(Delivery::Online { sas }) => {
                if self.since_reply.len() < 64 {
                    self.since_reply.push(text.to_owned());
                }
                if let Some(id) = client.last_sent_id() {
                    if self.recent.len() >= 256 {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((id.to_owned(), text.to_owned()));
                }
                if !had {
                    self.note("notice", "* a new encrypted session was negotiated for this line");
                    self.announce(client, sas);
                }
                if self.s.json {
                    self.out.line(
                        &show::note(
                            "sent",
                            text,
                            serde_json::json!({"to": self.bare.as_str(), "how": "online"}),
                        )
                        .to_string(),
                    );
                }
            }
            Ok(Delivery::Offline) => {
                if self.s.json {
                    self.out.line(
                        &show::note(
                            "sent",
                            text,
                            serde_json::json!({"to": self.bare.as_str(), "how": "offline"}),
                        )
                        .to_string(),
                    );
                } else if !had_offline {
                    self.note(
                        "notice",
                        &format!(
                            "* {b} is offline: sent in an offline session ({b} reads it when back); later \
                             lines go in it too",
                            b = self.bare
                        ),
                    );
                } else {
                    self.note("notice", "* (sent in the offline session)");
                }
            }
            Ok(_) => {}
            Err(e) => {
                let f = account::explain(client, &self.bare, self.seen, e);
                self.note("not-sent", &format!("!! NOT SENT: {f}"));
            }
        }
    }

    async fn command(&mut self, client: &mut Client, line: &str) -> Flow {
        let flow = self.command_inner(client, line).await;
        self.update_prompt(client);
        flow
    }

    async fn command_inner(&mut self, client: &mut Client, line: &str) -> Flow {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        let arg = words.next();
        match cmd {
            "/quit" | "/exit" | "/q" => return Flow::Quit,
            "/help" | "/?" => self.note("help", HELP),
            "/trust" | "/refuse" => match arg {
                // The fingerprint as shown, spaces and all, or compact.
                Some(_) => self.decide(client, cmd == "/trust", line[cmd.len()..].trim()).await,
                None => self.note(
                    "refused",
                    &format!("!! {cmd} FINGERPRINT: the key of an offline message held for your decision"),
                ),
            },
            "/sas" => match client.engine().sas(&self.bare).map(ToString::to_string) {
                // Confirmed already (/verify): the SAS, and that it is done.
                Some(sas) if show::verified(client.engine(), &self.bare) => {
                    self.note(
                        "sas",
                        &format!(
                            "* SAS {sas}: {} is verified (you confirmed this SAS, or its key)",
                            self.bare
                        ),
                    );
                    self.shown_sas = Some(sas);
                }
                Some(sas) => {
                    self.note(
                        "sas",
                        &format!("* SAS {sas}: compare it with {} out of band, then type /verify", self.bare),
                    );
                    self.shown_sas = Some(sas);
                }
                None => self.note("notice", &format!("* no encrypted session with {} has a SAS", self.bare)),
            },
            "/verify" => {
                let current = client.engine().sas(&self.bare).map(ToString::to_string);
                match current {
                    None => self.note(
                        "refused",
                        &format!("!! no encrypted session with {} has a SAS to verify", self.bare),
                    ),
                    Some(sas) if self.shown_sas.as_deref() != Some(sas.as_str()) => {
                        self.note(
                            "refused",
                            &format!(
                                "!! not verified: the SAS of this session had not been shown. It is {sas}: \
                                 compare it with {}, then type /verify again",
                                self.bare
                            ),
                        );
                        self.shown_sas = Some(sas);
                    }
                    Some(sas) => match client.engine_mut().confirm_sas(&self.bare) {
                        Ok(()) => self
                            .note("verified", &format!("* {} is verified (SAS {sas} confirmed)", self.bare)),
                        Err(e) => self.note("failed", &format!("!! not verified: {e}")),
                    },
                }
            }
            "/fp" => {
                let mine = client
                    .engine()
                    .config()
                    .identity
                    .as_ref()
                    .and_then(|k| fingerprint(&k.public_key()).ok())
                    .unwrap_or_else(|| "no identity key (`esession keygen` makes one)".to_owned());
                let theirs = match show::session_key(client.engine(), &self.bare) {
                    Some((fp, KeyState::Verified)) => format!("{fp} (verified)"),
                    Some((fp, KeyState::Pinned)) => format!("{fp} ({})", show::pinned_words(&self.bare, &fp)),
                    Some((fp, _)) => format!("{fp} (NOT verified)"),
                    None => {
                        let known: Vec<String> = client
                            .engine()
                            .trust()
                            .for_jid(&self.bare)
                            .iter()
                            .filter_map(|r| fingerprint(&r.key).ok())
                            .collect();
                        if known.is_empty() {
                            "no key known".into()
                        } else {
                            format!("known: {}", known.join(", "))
                        }
                    }
                };
                self.note("fingerprint", &format!("* your key: {mine}\n* {}'s key: {theirs}", self.bare));
            }
            "/status" => {
                let res: Vec<String> = client.resources(&self.bare).iter().map(ToString::to_string).collect();
                let presence = if res.is_empty() {
                    if self.sees_presence(client) { "offline".into() } else { "none has reached you".into() }
                } else {
                    format!("online as {}", res.join(", "))
                };
                self.note(
                    "status",
                    &format!("* {}: {}; presence: {presence}", self.bare, self.state(client)),
                );
            }
            "/rekey" => match client.rekey(&self.bare, "").await {
                Ok(()) => self.note("notice", "* the session has new keys"),
                Err(e) => {
                    self.note("failed", &format!("!! {}", account::explain(client, &self.bare, self.seen, e)))
                }
            },
            "/end" => {
                if client.engine().has_session(&self.bare) {
                    let r = tokio::time::timeout(Duration::from_secs(3), client.terminate(&self.bare)).await;
                    let how = if matches!(r, Ok(Ok(()))) { "" } else { " (no acknowledgement)" };
                    self.note("notice", &format!("* the session with {} ended{how}", self.bare));
                } else {
                    self.note("notice", &format!("* no session with {}", self.bare));
                }
            }
            "/add" => match account::add(client, &self.bare).await {
                Ok(()) => {
                    // The server answers an address it cannot reach at once (no such domain):
                    // a moment for it; what else comes meanwhile stays queued.
                    let b = self.bare.clone();
                    let _ = tokio::time::timeout(
                        Duration::from_millis(1500),
                        client.wait_for(|e| matches!(e, Event::Presence { peer, .. } if peer.to_bare() == b)),
                    )
                    .await;
                    let said = account::subscription_words(client, &self.bare);
                    match client.presence_error(&self.bare) {
                        Some(_) => self.note("failed", &format!("!! {said}")),
                        None => self.note("notice", &format!("* {said}")),
                    }
                }
                Err(e) => self.note("failed", &format!("!! {e}")),
            },
            "/approve" => {
                let who = match arg.map(parse_jid) {
                    None => Ok(self.bare.clone()),
                    Some(Ok(j)) => Ok(j.to_bare()),
                    Some(Err(e)) => Err(e),
                };
                match who {
                    Ok(b) => {
                        let r = match client.approve(&b).await {
                            Ok(()) => client.subscribe(&b).await,
                            Err(e) => Err(e),
                        };
                        match r {
                            Ok(()) => self.note(
                                "notice",
                                &format!("* {b} may see your presence; asked to see its presence too"),
                            ),
                            Err(e) => self.note("failed", &format!("!! {e}")),
                        }
                    }
                    Err(e) => self.note("failed", &format!("!! {e}")),
                }
            }
            other => self.note(
                "refused",
                &format!(
                    "!! unknown command {other}: NOT sent. /help lists the commands; start a line with // to \
                     send one that begins with /"
                ),
            ),
        }
        Flow::Go
    }

    async fn line(&mut self, client: &mut Client, line: &str) -> Flow {
        if line.trim().is_empty() {
            return Flow::Go;
        }
        if let Some(rest) = line.strip_prefix("//") {
            let text = format!("/{rest}");
            self.send(client, &text).await;
            return Flow::Go;
        }
        if line.trim_start().starts_with('/') {
            return self.command(client, line.trim()).await;
        }
        self.send(client, line).await;
        Flow::Go
    }

    /// `/trust FP` (`trust`) or `/refuse FP`: the user's decision on the key `fp` of offline
    /// messages held because it was not trusted. Trusted: what it sent is shown (and
    /// acknowledged, as every offline message the chat shows); refused: dropped unread.
    async fn decide(&mut self, client: &mut Client, trust: bool, fp: &str) {
        let want = account::normal_fp(fp);
        let held = match client.engine().held_untrusted() {
            Ok(h) => h,
            Err(e) => return self.note("failed", &format!("!! {e}")),
        };
        let mut senders: Vec<(BareJid, esession_crypto::PublicKey)> = Vec::new();
        for e in held {
            if let Event::Untrusted { peer, key, fingerprint, .. } = e
                && account::normal_fp(&fingerprint) == want
                && !senders.iter().any(|(p, k)| *p == peer.to_bare() && *k == key)
            {
                senders.push((peer.to_bare(), key));
            }
        }
        if senders.is_empty() {
            // The key the contact identified with in a negotiation refused for it (compared
            // now, trusted: the next line starts a session).
            if trust
                && let Some(key) = client.engine().refused_key(&self.bare)
                && fingerprint(&key).is_ok_and(|f| account::normal_fp(&f) == want)
            {
                match client.engine_mut().verify_key(&self.bare, key) {
                    Ok(()) => self.note(
                        "trusted",
                        &format!(
                            "* the key {fp} is verified for {}: a line you type now starts a session",
                            self.bare
                        ),
                    ),
                    Err(e) => self.note("failed", &format!("!! not trusted: {e}")),
                }
                return;
            }
            return self.note("refused", &format!("!! no offline message is held for the key {fp}"));
        }
        for (peer, key) in senders {
            if trust {
                match client.engine_mut().trust_held(&peer, &key) {
                    Ok(step) => {
                        // The engine associates the key (its store is the chat's); marking it
                        // verified in the account is `trust verify`, which waits for the chat.
                        self.note(
                            "trusted",
                            &format!(
                                "* the key {fp} is trusted for {peer} (after the chat, `esession trust verify \
                                 {peer} {}` marks it verified); what it sent:",
                                account::normal_fp(fp)
                            ),
                        );
                        for e in step.events {
                            self.event(client, e).await;
                        }
                    }
                    Err(e) => self.note("failed", &format!("!! not trusted: {e}")),
                }
            } else {
                match client.engine_mut().refuse_held(&peer, &key) {
                    Ok(n) => {
                        self.note("refused", &format!("* dropped {n} offline message(s) of {peer}, unread"))
                    }
                    Err(e) => self.note("failed", &format!("!! not dropped: {e}")),
                }
            }
        }
    }

    async fn event(&mut self, client: &mut Client, e: Event) {
        self.update_prompt(client);
        let ours = |j: &Jid| j.to_bare() == self.bare;
        let mut unread: Vec<String> = Vec::new();
        match &e {
            Event::Iq { stanza } => {
                if let Some(t) = account::roster_push(stanza) {
                    self.note("roster", &t);
                }
                account::answer_iq(client, stanza).await;
                return;
            }
            // Other contacts coming and going is noise here.
            Event::Presence { peer, .. } if !ours(peer) => return,
            // Another contact's session: this window cannot verify it or answer in it (its
            // `/verify` and lines are for this window's contact), so no SAS prompt here.
            Event::Negotiated { peer, offline: false, .. } if !ours(peer) && !self.s.json => {
                let other = peer.to_bare();
                self.note(
                    "notice",
                    &format!(
                        "* {other} opened an encrypted session with you: read and answer it, and compare \
                         its SAS, in `esession chat {other}` (this window is for {})",
                        self.bare
                    ),
                );
                return;
            }
            // Our request to see its presence is pending: an unavailable presence (Prosody sends
            // one) says nothing of whether it is online.
            Event::Presence { available: false, .. } if client.asked(&self.bare) => return,
            Event::Presence { peer, available } => {
                self.seen = true;
                if !self.presence.changed(peer, *available) {
                    return;
                }
            }
            Event::Reconnected { resumed: false, .. } => self.presence.reset(),
            Event::Message { peer, offline: false, .. } if ours(peer) => self.since_reply.clear(),
            // The contact's client went away, answered with an error (a server's bounce for a
            // resource that is gone) or was replaced by a new session (a restarted client): what
            // was sent since its last message may never have been read.
            Event::Terminated {
                peer,
                why:
                    esession_xmpp::Ended::PeerUnavailable
                    | esession_xmpp::Ended::PeerError
                    | esession_xmpp::Ended::Replaced,
                offline: false,
                ..
            } if ours(peer) && !self.since_reply.is_empty() && !self.s.json => {
                unread = std::mem::take(&mut self.since_reply);
            }
            Event::Unconfirmed { peer, id } if ours(peer) && !self.s.json => {
                if let Some((_, line)) = self.recent.iter().find(|(i, _)| i == id) {
                    let line = line.clone();
                    self.note(
                        "not-sent",
                        &format!(
                            "!! this line may not have arrived (the server had not confirmed it when the \
                             connection was lost): {line}\n!! type it again: it goes in a new session"
                        ),
                    );
                    return;
                }
            }
            Event::Negotiated { peer, sas: Some(sas), offline: false, .. } if ours(peer) => {
                self.shown_sas = Some(sas.to_string());
            }
            _ => {}
        }
        if self.s.json {
            if let Some(v) = show::json(client.engine(), &e) {
                self.out.line(&v.to_string());
            }
        } else if let Some(t) = show::text(client.engine(), &e, Place::Chat) {
            self.note("event", &t);
        }
        if !unread.is_empty() {
            self.note(
                "notice",
                &format!(
                    "!! {} may not have read what you sent since its last message:\n{}",
                    self.bare,
                    unread.iter().map(|l| format!("   {l}")).collect::<Vec<_>>().join("\n")
                ),
            );
        }
        // Shown: an offline message is done with (until then it is delivered again).
        if let Event::Message { id: Some(id), .. } = &e
            && let Err(err) = client.ack(id)
        {
            self.note("failed", &format!("!! {err}: this message may be shown again next time"));
        }
        if let Event::Terminated { peer, offline: false, why, .. } = &e
            && ours(peer)
            && *why != esession_xmpp::Ended::Replaced
        {
            self.note(
                "notice",
                &format!(
                    "* lines you type now start a new session if {b} is online, else go in an offline \
                     session if {b} published options, else are not sent: you are told which",
                    b = self.bare
                ),
            );
        }
    }
}

/// Waits for SIGTERM, SIGHUP or SIGINT (Ctrl-C where the terminal is not raw: the chat's
/// line editor reads Ctrl-C itself). Disabled: never fires. Once created, the signals stay
/// caught for the rest of the process (tokio never gives a handler back): whoever creates one
/// leaves cleanly in bounded time.
pub(crate) struct Signals(Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>);

impl Signals {
    pub(crate) fn new(enabled: bool) -> Self {
        if !enabled {
            return Self(Vec::new());
        }
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self(
                [SignalKind::terminate(), SignalKind::hangup(), SignalKind::interrupt()]
                    .into_iter()
                    .filter_map(|k| signal(k).ok())
                    .map(|mut sig| {
                        Box::pin(async move {
                            // A stream that ends (never here) counts as a signal.
                            let _ = sig.recv().await;
                        })
                            as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
                    })
                    .collect(),
            )
        }
        #[cfg(not(unix))]
        {
            Self(vec![Box::pin(async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            })])
        }
    }

    /// Completes when one of the signals has come (since creation, or since the last time).
    pub(crate) async fn any(&mut self) {
        if self.0.is_empty() {
            std::future::pending::<()>().await;
        }
        std::future::poll_fn(|cx| {
            for f in &mut self.0 {
                if f.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        })
        .await;
    }
}

/// Runs the chat on a logged-in client ([`account::with_client`] leaves the server after it).
pub(crate) async fn run(s: &Settings, client: &mut Client, peer: Jid) -> Result<(), Fail> {
    let bare = peer.to_bare();
    if client.jid().to_bare() == bare {
        return Err(Fail::usage("that is your own account"));
    }
    let prompt = input::LivePrompt::new();
    let mut chat = Chat {
        s,
        peer,
        bare,
        shown_sas: None,
        seen: false,
        down: false,
        prompt: prompt.clone(),
        out: Printer::plain(),
        recent: std::collections::VecDeque::new(),
        since_reply: Vec::new(),
        presence: PresenceShown::default(),
    };
    chat.note("notice", &format!("* logged in as {} (/help lists the commands)", client.jid()));
    chat.opening(client).await;
    chat.update_prompt(client);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
    // With --json, programs read the output: no line editor.
    let (printer, guard) = input::start(prompt, tx, !s.json);
    chat.out = printer;
    let mut signals = Signals::new(true);
    let mut lost = 0u32;
    let mut failure = None;
    loop {
        chat.update_prompt(client);
        let signal = signals.any();
        // Biased: what the client has queued (a reconnection told, the sessions it ended) is
        // shown before the next typed line is handled, so that a line's new session is never
        // told before the reconnection it follows.
        tokio::select! {
            biased;
            e = client.next_event() => match e {
                Ok(e) => {
                    lost = 0;
                    if matches!(e, Event::Reconnected { .. }) {
                        chat.down = false;
                    }
                    chat.event(client, e).await;
                }
                Err(Error::Disconnected(None)) => {
                    failure = Some(Fail::new(Exit::Network, "the connection to the server was closed"));
                    break;
                }
                // The client tells an outage once, then reconnects by itself and tells that
                // (Event::Reconnected), with what the outage ended.
                Err(e) => {
                    lost += 1;
                    chat.down = true;
                    // Before the note, whose repaint shows the prompt.
                    chat.update_prompt(client);
                    let what = match &e {
                        Error::Disconnected(Some(_)) => "the connection to the server was lost".to_owned(),
                        other => other.to_string(),
                    };
                    chat.note(
                        "failed",
                        &format!(
                            "!! {what}: reconnecting… (lines you type meanwhile are NOT sent; you are told \
                             when it is back)"
                        ),
                    );
                    if lost >= 5 {
                        failure = Some(Fail::from(e));
                        break;
                    }
                }
            },
            i = rx.recv() => match i {
                None | Some(Input::Eof | Input::Interrupt) => break,
                Some(Input::NotUtf8) => chat.note("not-sent", "!! that line is not UTF-8: NOT sent (the chat goes on)"),
                Some(Input::TooLong(n)) => chat.note(
                    "not-sent",
                    &format!("!! that line has {n} octets, more than {}: NOT sent (split it)", input::MAX_LINE),
                ),
                Some(Input::Line(l)) => {
                    if let Flow::Quit = chat.line(client, &l).await {
                        break;
                    }
                }
            },
            () = signal => break,
        }
    }
    if failure.is_none() && client.engine().has_session(&chat.bare) {
        let _ = tokio::time::timeout(Duration::from_secs(3), client.terminate(&chat.bare)).await;
    }
    chat.out.detach();
    drop(guard);
    if !s.json {
        out!();
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Issue 19: a presence the server sent twice was shown twice; one notice per change, and
    /// again after a reconnection (the server sends every presence again then).
    #[test]
    fn a_presence_is_shown_once_per_change() {
        let bob = parse_jid("bob@example.org/laptop").unwrap();
        let desk = parse_jid("bob@example.org/desk").unwrap();
        let mut p = PresenceShown::default();
        assert!(p.changed(&bob, true));
        assert!(!p.changed(&bob, true), "the same presence again is not news");
        assert!(p.changed(&desk, true), "another resource is");
        assert!(p.changed(&bob, false) && !p.changed(&bob, false));
        assert!(p.changed(&bob, true));
        p.reset();
        assert!(p.changed(&bob, true), "after a reconnection it is shown again");
    }

    /// Issue 19: the opening for an offline contact without offline options said lines were
    /// "not sent until" it came online, as if they were queued; none is.
    #[test]
    fn the_opening_for_an_offline_contact_says_what_happens_to_lines() {
        let bob = esession_xmpp::parse_bare("bob@example.org").unwrap();
        let none =
            offline_opening(&bob, Err(&Error::NoOfflineOptions { peer: bob.clone(), condition: None }));
        assert!(
            none.starts_with("* bob@example.org is offline and has published no offline options"),
            "{none}"
        );
        assert!(none.contains("are NOT sent") && none.contains("none is kept"), "{none}");
        assert!(!none.contains("until"), "nothing waits for the contact: {none}");
        let refused =
            Error::Offline(esession_offline::Error::Refused(esession_offline::Check::OptionsSignature));
        let unusable = offline_opening(&bob, Err(&refused));
        assert!(unusable.contains("cannot be used") && unusable.contains("NOT sent"), "{unusable}");
        assert!(!unusable.contains("until"), "{unusable}");
        let unknown = offline_opening(&bob, Err(&Error::Timeout("server")));
        assert!(
            unknown.contains("could not be fetched") && unknown.contains("you are told which"),
            "{unknown}"
        );
        let usable = offline_opening(&bob, Ok(()));
        assert!(usable.contains("go in an offline session (XEP-0187)"), "{usable}");
    }
}
