//! Bob: the responder (XEP-0116 §4.4, §4.5, §4.7).

use crate::check::{self, Flow, Offered};
use crate::config::Config;
use crate::entropy::Entropy;
use crate::error::{Check, Condition, Error, Result};
use crate::established::{Established, Opening, Settings, Side};
use crate::forms::{self, Incoming, Unread};
use crate::outputs::{Alert, Output};
use crate::shape::{Shaper, set_b64};
use crate::sigma::{self, Algs, Claimed, MacInput, Who};
use crate::store::Stores;
use crate::wire;
use chrono::{DateTime, Utc};
use esession_crypto::kdf::{self, SessionKeys};
use esession_crypto::{DhKeyPair, SecretBytes, hash::sha256, sas, secret};
use esession_forms::esession::{Accept, BobIdentity, DhOffer, Request, Response, SsnAnswer, Wrapper};
use esession_forms::names::{Disclosure, PubkeyMethod, Security};
use esession_forms::negotiation::choose;
use jid::{BareJid, Jid};
use minidom::Element;
use std::collections::VecDeque;
use std::sync::Arc;

/// What both waits for Alice's accept hold.
struct Answered {
    algs: Algs,
    settings: Settings,
    na: Vec<u8>,
    nb: Vec<u8>,
    y: DhKeyPair,
    d: Vec<u8>,
    ca: u128,
    cb: u128,
    form_a: Vec<u8>,
    form_b: Vec<u8>,
    init_method: PubkeyMethod,
    resp_method: PubkeyMethod,
}

/// 3-message: we sent our identity; K and the session keys exist.
struct AwaitAccept3 {
    a: Answered,
    e: Vec<u8>,
    k: SecretBytes,
    keys: SessionKeys,
    /// C_B after our identity.
    cb_after: u128,
}

/// 4-message: Alice committed to e with He; K needs her e.
struct AwaitAccept4 {
    a: Answered,
    he: Vec<u8>,
}

enum State {
    Idle,
    AwaitAccept3(Box<AwaitAccept3>),
    AwaitAccept4(Box<AwaitAccept4>),
    Done,
}

/// Bob. Created when a request arrives; outputs are drained with [`Responder::poll_output`].
pub struct Responder {
    cfg: Arc<Config>,
    peer: Jid,
    thread: String,
    state: State,
    out: VecDeque<Output>,
    shaper: Option<Box<dyn Shaper>>,
    piggyback: Option<Element>,
}

impl core::fmt::Debug for Responder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Responder(peer {}, thread {})", self.peer, self.thread)
    }
}

impl Responder {
    /// A responder for requests from `peer` (full JID) on `thread`.
    #[must_use]
    pub fn new(cfg: Arc<Config>, peer: Jid, thread: &str) -> Self {
        Self {
            cfg,
            peer,
            thread: thread.to_owned(),
            state: State::Idle,
            out: VecDeque::new(),
            shaper: None,
            piggyback: None,
        }
    }

    /// Content to encrypt into the stanza of our identity (4-message, §4.7.4).
    pub fn piggyback(&mut self, content: Element) {
        self.piggyback = Some(content);
    }

    /// Sends the forms through `shaper` (see [`Shaper`]).
    #[must_use]
    pub fn with_shaper(mut self, shaper: Box<dyn Shaper>) -> Self {
        self.shaper = Some(shaper);
        self
    }

    /// The peer.
    #[must_use]
    pub fn peer(&self) -> &Jid {
        &self.peer
    }

    /// The negotiation's thread.
    #[must_use]
    pub fn thread(&self) -> &str {
        &self.thread
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether the negotiation is over.
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn peer_bare(&self) -> BareJid {
        self.peer.to_bare()
    }

    /// Handles a stanza from Alice (her request, then her accept).
    ///
    /// # Errors
    /// The failure, also reported as `Output::Rejected`; the state is discarded.
    pub fn handle(
        &mut self,
        now: DateTime<Utc>,
        stanza: &Element,
        entropy: &mut dyn Entropy,
        stores: &mut Stores<'_>,
    ) -> Result<()> {
        if matches!(self.state, State::Done) {
            return Err(Error::ApiMisuse("no stanza is expected"));
        }
        let state = core::mem::replace(&mut self.state, State::Done);
        let r = match (wire::screen(stanza), state) {
            // An error stanza is never answered (RFC 6120 §8.3.1): not even when it quotes a
            // request and arrives where a request is expected.
            (wire::Screened::Error(e), _) => Err(e),
            (wire::Screened::TooLarge, _) => {
                Err(self.refuse(None, Check::Form, Condition::NotAcceptable, &[]))
            }
            (wire::Screened::Read, State::Idle) => self.on_request(stanza, entropy),
            (wire::Screened::Read, State::AwaitAccept3(s)) => self.on_accept3(*s, stanza, stores),
            (wire::Screened::Read, State::AwaitAccept4(s)) => {
                self.on_accept4(*s, stanza, entropy, stores, now)
            }
            (wire::Screened::Read, State::Done) => Err(Error::ApiMisuse("no stanza is expected")),
        };
        if let Err(e) = &r {
            self.state = State::Done;
            self.out.push_back(Output::Rejected(e.clone()));
        }
        r
    }

    fn refuse(
        &mut self,
        received: Option<&Element>,
        check: Check,
        condition: Condition,
        fields: &[&str],
    ) -> Error {
        if !self.cfg.silent_rejections {
            let owned: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
            self.out.push_back(Output::Send(wire::error_reply(
                &self.peer,
                &self.thread,
                received,
                condition,
                &owned,
            )));
        }
        Error::peer(check, condition, fields)
    }

    fn read<'s>(&mut self, stanza: &'s Element, condition: Condition) -> Result<Incoming<'s>> {
        forms::incoming(stanza).map_err(|u| match u {
            Unread::NoWrapper => Error::ApiMisuse("not an ESession stanza"),
            Unread::NoForm => Error::peer(Check::Form, condition, &[]),
            Unread::BadForm(w) => self.refuse(Some(w), Check::Form, condition, &[]),
        })
    }

    fn send_form(&mut self, x: Element) {
        self.out.push_back(Output::Send(wire::message(
            &self.peer,
            &self.thread,
            vec![Wrapper::Feature.wrap(x)],
        )));
    }

    fn on_request(&mut self, stanza: &Element, entropy: &mut dyn Entropy) -> Result<()> {
        let received = self.read(stanza, Condition::NotAcceptable)?;
        let wrapper = received.wrapper;
        let req = Request::parse(&received.data).map_err(|e| {
            let field = match &e {
                esession_forms::Error::MissingField(f) => vec![*f],
                _ => vec![],
            };
            self.refuse(Some(wrapper), Check::Form, Condition::NotAcceptable, &field)
        })?;
        let cfg = Arc::clone(&self.cfg);
        let four = req.is_four_message();
        // §4.4: 3-message requests may be refused with feature-not-implemented naming dhkeys.
        if !four && !cfg.support.three_message {
            return Err(self.refuse(
                Some(wrapper),
                Check::Options,
                Condition::FeatureNotImplemented,
                &["dhkeys"],
            ));
        }
        let choices = match choose(&req, &cfg.support) {
            Ok(c) => c,
            Err(bad) => {
                // Declining the ESession but accepting a plain session (§4.4, Example 7).
                let fallback =
                    req.offers.security.iter().find(|s| matches!(s, Security::C2s | Security::None)).cloned();
                if let (true, Some(sec)) = (cfg.accept_ssn, fallback) {
                    let answer = SsnAnswer {
                        accept: true,
                        logging: req.offers.logging.first().cloned(),
                        disclosure: Some(Disclosure::Never),
                        security: Some(sec.clone()),
                    };
                    self.send_form(answer.to_form(cfg.profile).to_element_with(false));
                    self.out.push_back(Output::StanzaSession { security: sec });
                    return Ok(());
                }
                return Err(self.refuse(Some(wrapper), Check::Options, Condition::NotAcceptable, &bad));
            }
        };
        if !esession_stanza::compress::supported(&choices.compress) {
            return Err(self.refuse(Some(wrapper), Check::Options, Condition::NotAcceptable, &["compress"]));
        }
        let (group, idx) = choices.modp;
        if choices.disclosure != Disclosure::Never {
            // X116-7.6-01: disclosure other than never is told at once.
            self.out.push_back(Output::Alert(Alert::Disclosure(choices.disclosure.clone())));
        }
        // §4.5.1: N_B, C_A, C_B, y, d.
        let nb = entropy.nonce();
        let ca = entropy.counter(cfg.profile);
        let y = entropy.dh(group)?;
        let d = y.public().to_vec();
        let proposed = choices.response(nb, d.clone(), req.my_nonce.clone(), ca);
        let offered = Offered {
            flow: if four { Flow::Four } else { Flow::Three },
            offers: &req.offers,
            init_pubkey: &req.init_pubkey,
            resp_pubkey: &req.resp_pubkey,
            sas_algs: &req.sas_algs,
            none_in_three: cfg.support.none_in_three_message,
        };
        // What we send is what counts: our choices are re-read from the form sent (a shaper may
        // have made other free choices, which must still be acceptable to us).
        let sent = forms::outgoing(cfg.profile, false, &mut self.shaper, &proposed, |r: &Response| {
            r.d == d
                && r.nonce == req.my_nonce
                && check::unacceptable(&offered, Some(&cfg.support), r).is_empty()
        })?;
        let resp = &sent.form;
        let a = Answered {
            algs: Algs::chosen(cfg.profile, resp),
            settings: Settings::chosen(resp),
            na: req.my_nonce.clone(),
            nb: resp.my_nonce.clone(),
            y,
            d: d.clone(),
            ca: resp.counter,
            cb: resp.counter ^ (1 << 127),
            form_a: received.whole_content(cfg.profile).map_err(|_| Error::Config("normalize"))?,
            form_b: sent.content,
            init_method: resp.init_pubkey.clone().unwrap_or(PubkeyMethod::Key),
            resp_method: resp.resp_pubkey.clone().unwrap_or(PubkeyMethod::Key),
        };
        let mut x = sent.x;
        match &req.dh {
            DhOffer::Hashes(h) => {
                let he = h.get(idx).cloned().unwrap_or_default();
                self.send_form(x);
                self.state = State::AwaitAccept4(Box::new(AwaitAccept4 { a, he }));
            }
            DhOffer::Keys(es) => {
                let e = es.get(idx).cloned().unwrap_or_default();
                // §4.5.1: 1 < e < p - 1, else feature-not-implemented.
                // X116-4.5.1-03: e is range-checked before use.
                let Ok(z) = a.y.agree_reusable(&e) else {
                    return Err(self.refuse(
                        Some(wrapper),
                        Check::ERange,
                        Condition::FeatureNotImplemented,
                        &["dhkeys"],
                    ));
                };
                let k = z.session_key(&a.algs.hash)?;
                let keys = SessionKeys::derive(&a.algs.hash, &k)?;
                let input = MacInput { before: &[&a.na, &a.nb, &a.d], after: &[&a.form_b] };
                let hidden = sigma::hide(
                    &a.algs,
                    &keys.responder,
                    a.cb,
                    &a.resp_method,
                    cfg.identity.as_ref(),
                    &input,
                    entropy.rng(),
                )?;
                set_b64(&mut x, "identity", &hidden.id);
                set_b64(&mut x, "mac", &hidden.m);
                self.send_form(x);
                self.state = State::AwaitAccept3(Box::new(AwaitAccept3 {
                    a,
                    e,
                    k,
                    keys,
                    cb_after: hidden.counter_after,
                }));
            }
        }
        Ok(())
    }

    /// Alice's accept: the form (its nonce echo checked) and its normalized content (form_A2).
    fn read_accept(&mut self, stanza: &Element, nb: &[u8]) -> Result<(Accept, Vec<u8>)> {
        let received = self.read(stanza, Condition::FeatureNotImplemented)?;
        let wrapper = received.wrapper;
        let accept = Accept::parse(&received.data)
            .map_err(|_| self.refuse(Some(wrapper), Check::Form, Condition::FeatureNotImplemented, &[]))?;
        if accept.nonce != nb {
            return Err(self.refuse(
                Some(wrapper),
                Check::NonceEcho,
                Condition::FeatureNotImplemented,
                &["nonce"],
            ));
        }
        let form_a2 = received.content(self.cfg.profile).map_err(|_| Error::Config("normalize"))?;
        Ok((accept, form_a2))
    }

    /// Alice's identity with the keys of `keys`' initiator direction.
    fn verify_alice(
        &mut self,
        stanza: &Element,
        a: &Answered,
        keys: &SessionKeys,
        e: &[u8],
        (accept, form_a2): &(Accept, Vec<u8>),
        stores: &mut Stores<'_>,
    ) -> Result<sigma::Revealed> {
        let bare = self.peer_bare();
        let claimed = Claimed {
            id: &accept.identity,
            m: &accept.mac,
            method: &a.init_method,
            jid: &bare,
            who: Who::Alice,
        };
        let input = MacInput { before: &[&a.nb, &a.na, e], after: &[&a.form_a, form_a2.as_slice()] };
        let rev = sigma::reveal(&a.algs, &keys.initiator, a.ca, &claimed, &input, &*stores.trust).map_err(
            |check| {
                let wrapper = Wrapper::find(stanza);
                self.refuse(wrapper, check, Condition::FeatureNotImplemented, &[])
            },
        )?;
        for alert in crate::store::key_alerts(&mut *stores.trust, &bare, rev.proof.key())? {
            self.out.push_back(Output::Alert(alert));
        }
        Ok(rev)
    }

    fn on_accept3(&mut self, s: AwaitAccept3, stanza: &Element, stores: &mut Stores<'_>) -> Result<()> {
        let read = self.read_accept(stanza, &s.a.nb)?;
        let rev = self.verify_alice(stanza, &s.a, &s.keys, &s.e, &read, stores)?;
        let accept = read.0;
        let mut est = Established::open(
            rev.proof,
            Opening {
                algs: &s.a.algs,
                settings: &s.a.settings,
                keys: &s.keys,
                side: Side::Responder,
                send_counter: s.cb_after,
                recv_counter: rev.counter_after,
                own: s.a.y,
                peer_public: s.e,
                peer: self.peer.clone(),
                thread: self.thread.clone(),
                sas: None,
                retained_secret_used: false,
                k: s.k,
            },
        )?;
        // Content in the same stanza, processed only now that Alice's identity verified.
        let content = est.open_attached(stanza);
        if accept.terminate {
            // Object encryption: the session ends with this stanza (§4.6.4).
            est.close();
        }
        self.out.push_back(Output::Established(Box::new(est)));
        match content {
            Ok(Some((content, unprotected))) => self.out.push_back(Output::Received { content, unprotected }),
            Ok(None) => {}
            Err(e) => self.out.push_back(Output::Rejected(e)),
        }
        self.state = State::Done;
        Ok(())
    }

    fn on_accept4(
        &mut self,
        s: AwaitAccept4,
        stanza: &Element,
        entropy: &mut dyn Entropy,
        stores: &mut Stores<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let read = self.read_accept(stanza, &s.a.nb)?;
        let a = s.a;
        let refuse_dhkeys = |me: &mut Self, check| {
            let wrapper = Wrapper::find(stanza);
            me.refuse(wrapper, check, Condition::FeatureNotImplemented, &["dhkeys"])
        };
        // §4.7.1: the He commitment, the range of e, K = HASH(e^y).
        let Some(e) = read.0.e.clone() else {
            return Err(refuse_dhkeys(self, Check::Form));
        };
        // X116-4.7.1-01: SHA256(e) must equal the committed He.
        if !secret::ct_eq(&sha256(&e), &s.he) {
            return Err(refuse_dhkeys(self, Check::HeCommitment));
        }
        // X116-4.7.1-01: e is range-checked before use.
        let Ok(z) = a.y.agree_reusable(&e) else {
            return Err(refuse_dhkeys(self, Check::ERange));
        };
        let k = z.session_key(&a.algs.hash)?;
        let provisory = SessionKeys::derive(&a.algs.hash, &k)?;
        let rev = self.verify_alice(stanza, &a, &provisory, &e, &read, stores)?;
        let accept = read.0;
        let cfg = Arc::clone(&self.cfg);
        // §4.7.3: the SRS among Alice's rshashes, first for her bare JID, then across all JIDs.
        let jid = self.peer_bare();
        let find = |list: Vec<&crate::store::Retained>| {
            list.into_iter().find_map(|r| {
                let h = kdf::rshash(&a.algs.hash, &a.na, &r.secret).ok()?;
                accept
                    .rshashes
                    .iter()
                    .any(|x| secret::ct_eq(&h, x))
                    .then(|| (r.secret.duplicate(), r.chain_verified))
            })
        };
        let srs = find(stores.retained.for_jid(&jid, now)).or_else(|| find(stores.retained.all(now)));
        let k_final = kdf::final_k(&a.algs.hash, &k, srs.as_ref().map(|(x, _)| x), cfg.oss.as_ref())?;
        let keys = SessionKeys::derive(&a.algs.hash, &k_final)?;
        // §4.7.2: the SAS from M_A and form_B.
        let sas_value = sas::sas28x5(cfg.profile, &a.algs.hash, &accept.mac, &a.form_b)?;
        // §4.7.4: srshash (random when no SRS), then our identity with form_B2.
        let srshash = match &srs {
            Some((x, _)) => kdf::srshash(&a.algs.hash, x)?,
            None => {
                let n = a.algs.hash.output_len()?;
                let mut r = entropy.bytes(n);
                r.truncate(n);
                r
            }
        };
        let ident = BobIdentity { nonce: a.na.clone(), srshash, identity: Vec::new(), mac: Vec::new() };
        let sent =
            forms::outgoing(cfg.profile, false, &mut self.shaper, &ident, |i: &BobIdentity| i.nonce == a.na)?;
        let mut x = sent.x;
        let input = MacInput { before: &[&a.na, &a.nb, &a.d], after: &[&a.form_b, &sent.content] };
        let hidden = sigma::hide(
            &a.algs,
            &keys.responder,
            a.cb,
            &a.resp_method,
            cfg.identity.as_ref(),
            &input,
            entropy.rng(),
        )?;
        set_b64(&mut x, "identity", &hidden.id);
        set_b64(&mut x, "mac", &hidden.m);
        let mut msg4 = wire::message(&self.peer, &self.thread, vec![Wrapper::Init.wrap(x)]);
        if srs.is_none() && !stores.retained.for_jid(&jid, now).is_empty() {
            self.out.push_back(Output::Alert(Alert::RetainedSecretMismatch { jid: jid.clone() }));
        }
        let new_rs = kdf::new_retained_secret(&a.algs.hash, &k_final)?;
        let chain_verified = srs.as_ref().is_some_and(|(_, v)| *v);
        stores.retained.replace(&jid, srs.as_ref().map(|(x, _)| x), new_rs, now, chain_verified)?;
        if srs.is_none() {
            self.out.push_back(Output::Alert(Alert::NoRetainedSecret { jid: jid.clone() }));
        }
        if !stores.trust.sas_confirmed(&jid) {
            self.out.push_back(Output::Alert(Alert::SasNotConfirmed { jid }));
        }
        self.out.push_back(Output::SasReady(sas_value.clone()));
        let mut est = Established::open(
            rev.proof,
            Opening {
                algs: &a.algs,
                settings: &a.settings,
                keys: &keys,
                side: Side::Responder,
                send_counter: hidden.counter_after,
                recv_counter: rev.counter_after,
                own: a.y,
                peer_public: e,
                peer: self.peer.clone(),
                thread: self.thread.clone(),
                sas: Some(sas_value),
                retained_secret_used: srs.is_some(),
                k: k_final,
            },
        )?;
        if let Some(content) = self.piggyback.take() {
            est.attach(&mut msg4, &content, entropy.rng())?;
        }
        self.out.push_back(Output::Send(msg4));
        self.out.push_back(Output::Established(Box::new(est)));
        self.state = State::Done;
        Ok(())
    }
}
