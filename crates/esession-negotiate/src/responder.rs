//! Bob: the responder (XEP-0116 §4.4, §4.5, §4.7).

use crate::check::{self, Flow, Offered};
use crate::config::Config;
use crate::entropy::Entropy;
use crate::error::{Check, Condition, Error, Result};
use crate::established::{Established, KeyCheck, Opening, Settings, Side};
use crate::forms::{self, Incoming, Unread};
use crate::outputs::{Alert, Output};
use crate::shape::{Shaper, set_b64};
use crate::sigma::{self, Algs, Claimed, MacInput, Who};
use crate::store::Stores;
use crate::wire;
use chrono::{DateTime, Utc};
use esession_crypto::kdf::{self, SessionKeys};
use esession_crypto::{DhKeyPair, hash::sha256, sas, secret};
use esession_forms::esession::{
    Accept, BobIdentity, DhOffer, Request, Response, SsnAnswer, SsnCompletion, Wrapper,
};
use esession_forms::names::{Disclosure, PubkeyMethod, Security};
use esession_forms::negotiation::{Refusal, answer_others, choose, choose_disclosure, first_supported};
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

/// 3-message: we sent our identity; the session keys exist (K itself is gone, X116-4.5.3-05).
struct AwaitAccept3 {
    a: Answered,
    e: Vec<u8>,
    /// K, kept only in hazmat builds (known-answer checks).
    #[cfg(feature = "hazmat")]
    k: esession_crypto::SecretBytes,
    /// The check value of K (the session's [`KeyCheck`]).
    key_check: KeyCheck,
    keys: SessionKeys,
    /// C_B after our identity.
    cb_after: u128,
}

/// 4-message: Alice committed to e with He; K needs her e.
// X116-4.5.1-04: in a 4-message negotiation Bob skips K = HASH(e^y mod p): he has only He, and
// this state holds no e and no K (they appear with Alice's accept, §4.7.1).
struct AwaitAccept4 {
    a: Answered,
    he: Vec<u8>,
}

enum State {
    Idle,
    AwaitAccept3(Box<AwaitAccept3>),
    AwaitAccept4(Box<AwaitAccept4>),
    /// We accepted a plain stanza session (XEP-0116 §4.4): Alice completes or cancels it
    /// (XEP-0155 §4.4).
    AwaitSsnCompletion(Security),
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

    /// Handles a stanza from Alice: her request, then her accept (or, after we accepted a plain
    /// stanza session, her completion or cancel).
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
        // X116-4.4-05: the state is taken out; only a success puts the next one back, and a
        // failure leaves Bob done: everything learned is dropped, nothing more is read.
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
            (wire::Screened::Read, State::AwaitSsnCompletion(security)) => {
                self.on_ssn_completion(security, stanza)
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
            // X155-4.2-02: error replies mirror the thread too.
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
        // X155-4.2-02: every stanza Bob sends mirrors the request's thread.
        self.out.push_back(Output::Send(wire::message(
            &self.peer,
            &self.thread,
            vec![Wrapper::Feature.wrap(x)],
        )));
    }

    fn on_request(&mut self, stanza: &Element, entropy: &mut dyn Entropy) -> Result<()> {
        let received = self.read(stanza, Condition::NotAcceptable)?;
        let wrapper = received.wrapper;
        // A request that does not parse is refused naming the field at fault (a nonce shorter
        // than 8 octets, an empty commitment...): Bob keeps nothing.
        let req = Request::parse(&received.data).map_err(|e| {
            // X155-4.3-08: a FORM_TYPE we do not support: service-unavailable.
            let condition = if e == esession_forms::Error::WrongFormType {
                Condition::ServiceUnavailable
            } else {
                Condition::NotAcceptable
            };
            let field: Vec<&str> = e.field().into_iter().collect();
            self.refuse(Some(wrapper), Check::Form, condition, &field)
        })?;
        let cfg = Arc::clone(&self.cfg);
        if req.my_nonce.len() < check::min_nonce_len(cfg.profile) {
            return Err(self.refuse(Some(wrapper), Check::Form, Condition::NotAcceptable, &["my_nonce"]));
        }
        // The fields Alice marked required: each must have a value in what we send back.
        let required: Vec<String> =
            received.data.fields.iter().filter(|f| f.required).filter_map(|f| f.var.clone()).collect();
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
        // The configuration's profile decides which hash keys which cipher, whatever
        // `support.profile` says (two fields nothing keeps in step).
        let support = esession_forms::negotiation::Support { profile: cfg.profile, ..cfg.support.clone() };
        let choices = match choose(&req, &support) {
            Ok(c) => c,
            Err(refusal) => return self.fall_back(wrapper, &req, &required, refusal),
        };
        if !esession_stanza::compress::supported(&choices.compress) {
            return Err(self.refuse(Some(wrapper), Check::Options, Condition::NotAcceptable, &["compress"]));
        }
        let (group, idx) = choices.modp;
        if choices.disclosure != Disclosure::Never {
            // X116-7.6-01: disclosure other than never is told at once.
            self.out.push_back(Output::Alert(Alert::Disclosure(choices.disclosure.clone())));
        }
        // X116-4.5.1-03: N_B, C_A (n = 128 random bits, I7), C_B = C_A xor 2^127, y, d.
        let nb = entropy.nonce();
        let ca = entropy.counter(cfg.profile);
        let y = entropy.dh(group)?;
        let d = y.public().to_vec();
        // X116-4.5.2-05: never Alice's N_A as our N_B, nor one of her e (or a d whose SHA-256
        // is one of her He) as our d: a generator that returns them is failing.
        let echoes_e = match &req.dh {
            DhOffer::Keys(es) => es.contains(&d),
            DhOffer::Hashes(hs) => {
                let hd = sha256(&d);
                hs.iter().any(|h| secret::ct_eq(h, &hd))
            }
        };
        if nb == req.my_nonce || echoes_e || nb.len() < check::min_nonce_len(cfg.profile) {
            return Err(Error::Crypto(esession_crypto::Error::Rng));
        }
        let proposed = choices.response(nb, d.clone(), req.my_nonce.clone(), ca);
        let offered = Offered {
            flow: if four { Flow::Four } else { Flow::Three },
            offers: &req.offers,
            init_pubkey: &req.init_pubkey,
            resp_pubkey: &req.resp_pubkey,
            sas_algs: &req.sas_algs,
            none_in_three: cfg.support.none_in_three_message,
            profile: cfg.profile,
        };
        // What we send is what counts: our choices are re-read from the form sent (a shaper may
        // have made other free choices, which must still be acceptable to us).
        let sent = forms::outgoing(cfg.profile, false, &mut self.shaper, &proposed, |r: &Response| {
            r.d == d
                && r.nonce == req.my_nonce
                && check::unacceptable(&offered, Some(&cfg.support), r).is_empty()
                && check::other_answers(&req.other, &r.other).is_empty()
        })?;
        let resp = &sent.form;
        // X155-4.2-03: the response gives a value to every field the request marked required
        // (checked on the form as it will be sent); else we refuse rather than answer.
        let unanswered: Vec<&str> =
            required.iter().map(String::as_str).filter(|v| !resp.answers(v)).collect();
        if !unanswered.is_empty() {
            return Err(self.refuse(
                Some(wrapper),
                Check::Options,
                Condition::FeatureNotImplemented,
                &unanswered,
            ));
        }
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
                // X116-4.5.1-01: Alice's He of the chosen group (its position in `modp`).
                let he = h.get(idx).cloned().unwrap_or_default();
                self.send_form(x);
                self.state = State::AwaitAccept4(Box::new(AwaitAccept4 { a, he }));
            }
            DhOffer::Keys(es) => {
                let e = es.get(idx).cloned().unwrap_or_default();
                // X116-4.5.1-02: 1 < e < p - 1, else feature-not-implemented (checked before e
                // is used).
                let Ok(z) = a.y.agree_reusable(&e) else {
                    return Err(self.refuse(
                        Some(wrapper),
                        Check::ERange,
                        Condition::FeatureNotImplemented,
                        &["dhkeys"],
                    ));
                };
                // X116-4.5.1-03: K = HASH(e^y mod p), then the session keys from K (§4.5.3).
                let k = z.session_key(&a.algs.hash)?;
                let keys = SessionKeys::derive(&a.algs.hash, &k)?;
                // X116-4.5.3-05: K is destroyed once the keys are derived (`SecretBytes`
                // zeroizes); only a hazmat build keeps it, for known-answer checks.
                let key_check = KeyCheck::of(&k);
                #[cfg(not(feature = "hazmat"))]
                drop(k);
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
                // X116-4.5.2-08: the 3-message response goes out only now, after the keys
                // (§4.5.3) and Bob's hidden identity (§4.5.4), never before.
                self.send_form(x);
                self.state = State::AwaitAccept3(Box::new(AwaitAccept3 {
                    a,
                    e,
                    #[cfg(feature = "hazmat")]
                    k,
                    key_check,
                    keys,
                    cb_after: hidden.counter_after,
                }));
            }
        }
        Ok(())
    }

    /// The ESession cannot be accepted (`refusal`): accept a plain stanza session instead when
    /// Alice offered `security` `c2s` or `none` and we may (XEP-0116 §4.4, Example 7), answering
    /// the plain session's fields with what she offered and we support; else refuse naming the
    /// fields (XEP-0155 §4.3).
    fn fall_back(
        &mut self,
        wrapper: &Element,
        req: &Request,
        required: &[String],
        refusal: Refusal,
    ) -> Result<()> {
        let cfg = Arc::clone(&self.cfg);
        let security =
            req.offers.security.iter().find(|s| matches!(s, Security::C2s | Security::None)).cloned();
        let answer = match (&refusal, cfg.accept_ssn, security) {
            // X155-4.2-04: the same answers as an ESession would give: what Alice offered and
            // we support, the other fields answered by the one rule.
            (Refusal::NotAcceptable(_), true, Some(security)) => {
                // X155-N15-01: a plain stanza session is not encrypted, so the servers could
                // archive it readable, and nothing here confirms that ours will not (XEP-0136
                // automated archiving): `mustnot` is never set in it.
                let may_set: Vec<esession_forms::names::Logging> = cfg
                    .support
                    .logging
                    .iter()
                    .filter(|l| **l != esession_forms::names::Logging::MustNot)
                    .cloned()
                    .collect();
                let logging = first_supported(&req.offers.logging, &may_set);
                let disclosure = choose_disclosure(&req.offers.disclosure, &cfg.support);
                match (logging, disclosure, answer_others(&req.other)) {
                    (Some(l), Some(d), Ok(other)) => Some(SsnAnswer {
                        accept: true,
                        logging: Some(l),
                        disclosure: Some(d),
                        security: Some(security),
                        other,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(answer) = answer else {
            let (condition, fields) = match &refusal {
                Refusal::NotImplemented(f) => (Condition::FeatureNotImplemented, f),
                Refusal::NotAcceptable(f) => (Condition::NotAcceptable, f),
            };
            let names: Vec<&str> = fields.iter().map(String::as_str).collect();
            return Err(self.refuse(Some(wrapper), Check::Options, condition, &names));
        };
        // X155-4.2-03: every field the request marked required has a value in the answer.
        let unanswered: Vec<&str> =
            required.iter().map(String::as_str).filter(|v| !answer.answers(v)).collect();
        if !unanswered.is_empty() {
            return Err(self.refuse(
                Some(wrapper),
                Check::Options,
                Condition::FeatureNotImplemented,
                &unanswered,
            ));
        }
        let security = answer.security.clone().unwrap_or(Security::None);
        self.send_form(answer.to_form(cfg.profile).to_element_with(false));
        // X155-4.4-01: the session is open once Alice completes it.
        self.state = State::AwaitSsnCompletion(security);
        Ok(())
    }

    /// Alice's completion or cancel of the plain stanza session (XEP-0155 §4.4).
    fn on_ssn_completion(&mut self, security: Security, stanza: &Element) -> Result<()> {
        let received = self.read(stanza, Condition::NotAcceptable)?;
        let wrapper = received.wrapper;
        let completion = SsnCompletion::parse(&received.data).map_err(|e| {
            let field: Vec<&str> = e.field().into_iter().collect();
            self.refuse(Some(wrapper), Check::Form, Condition::NotAcceptable, &field)
        })?;
        if !completion.accept {
            // X155-4.4-05: Alice cancelled; a cancel is not answered.
            return Err(Error::Rejected { condition: None, fields: Vec::new() });
        }
        self.out.push_back(Output::StanzaSession { security });
        self.state = State::Done;
        Ok(())
    }

    /// Alice's accept: the form (its nonce echo checked) and its normalized content (form_A2).
    fn read_accept(&mut self, stanza: &Element, nb: &[u8]) -> Result<(Accept, Vec<u8>)> {
        let received = self.read(stanza, Condition::FeatureNotImplemented)?;
        let wrapper = received.wrapper;
        let accept = Accept::parse(&received.data)
            .map_err(|_| self.refuse(Some(wrapper), Check::Form, Condition::FeatureNotImplemented, &[]))?;
        if !accept.accept {
            // X155-4.4-03 X155-4.4-05: `accept` false is Alice's cancel (XEP-0155 §4.4): the
            // negotiation ends, nothing is established and a cancel is not answered.
            return Err(Error::Rejected { condition: None, fields: Vec::new() });
        }
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
                key_check: s.key_check.clone(),
                #[cfg(feature = "hazmat")]
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
            Ok(Some((content, unprotected, clear))) => {
                self.out.push_back(Output::Received { content, unprotected, clear });
            }
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
        // X116-4.7.3-01: the SRS among Alice's rshashes (HMAC(HASH, N_A, secret) of each
        // secret retained for her bare JID, compared in constant time); the store hands out only
        // secrets that have not expired (`RetainedStore::for_jid` with `now`). Then across all
        // JIDs (§4.7.3, SHOULD).
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
        // Nothing to match (no rshashes): no HMAC is computed at all.
        let srs = if accept.rshashes.is_empty() {
            None
        } else {
            find(stores.retained.for_jid(&jid, now)).or_else(|| {
                // X116-4.7.3-02 X116-4.7.3-03 (I31): the other JIDs' secrets, newest first, at
                // most `extended_search` of them (each is an HMAC a stranger's request costs).
                let mut others: Vec<&crate::store::Retained> =
                    stores.retained.all(now).into_iter().filter(|r| r.jid != jid).collect();
                let k = cfg.extended_search.min(others.len());
                if k < others.len() {
                    others.select_nth_unstable_by(k, |a, b| b.created.cmp(&a.created));
                    others.truncate(k);
                }
                find(others)
            })
        };
        let k_final = kdf::final_k(&a.algs.hash, &k, srs.as_ref().map(|(x, _)| x), cfg.oss.as_ref())?;
        // The Diffie-Hellman K has served (provisory keys, K_final): destroyed.
        drop(k);
        // X116-4.7.3-05: the session keys from K_final.
        let keys = SessionKeys::derive(&a.algs.hash, &k_final)?;
        // §4.7.2: the SAS from M_A and form_B.
        let sas_value = sas::sas28x5(cfg.profile, &a.algs.hash, &accept.mac, &a.form_b)?;
        // §4.7.4: srshash (random when no SRS), then our identity with form_B2.
        let srshash = match &srs {
            Some((x, _)) => kdf::srshash(&a.algs.hash, x)?,
            // X116-4.7.4-04: no SRS: a random value of the hash's length instead.
            None => {
                let n = a.algs.hash.output_len()?;
                let mut r = entropy.bytes(n);
                r.truncate(n);
                r
            }
        };
        // X116-4.7.4-05: N_A in `nonce`, then ID_B and M_B (set below) in Bob's form.
        let ident = BobIdentity { nonce: a.na.clone(), srshash, identity: Vec::new(), mac: Vec::new() };
        let sent =
            forms::outgoing(cfg.profile, false, &mut self.shaper, &ident, |i: &BobIdentity| i.nonce == a.na)?;
        let mut x = sent.x;
        // X116-4.7.4-02: mac_B as in 3-message negotiations, with form_B2 (this form without
        // `identity` and `mac`) after form_B.
        let input = MacInput { before: &[&a.na, &a.nb, &a.d], after: &[&a.form_b, &sent.content] };
        // X116-4.7.4-01: Bob proves his identity (hidden with the final keys).
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
        // X155-4.2-02: Bob's identity mirrors the thread.
        let mut msg4 = wire::message(&self.peer, &self.thread, vec![Wrapper::Init.wrap(x)]);
        if srs.is_none() && !stores.retained.for_jid(&jid, now).is_empty() {
            self.out.push_back(Output::Alert(Alert::RetainedSecretMismatch { jid: jid.clone() }));
        }
        let new_rs = kdf::new_retained_secret(&a.algs.hash, &k_final)?;
        // X116-4.7.4-09: K (K_final) is destroyed once the new retained secret is made; only a
        // hazmat build keeps it in the session, for known-answer checks.
        let key_check = KeyCheck::of(&k_final);
        #[cfg(not(feature = "hazmat"))]
        drop(k_final);
        let chain_verified = srs.as_ref().is_some_and(|(_, v)| *v);
        // X116-4.7.4-07: the SRS used is destroyed and the new secret stored in its place.
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
                key_check,
                #[cfg(feature = "hazmat")]
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
