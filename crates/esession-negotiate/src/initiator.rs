//! Alice: the initiator of a 3-message (SIGMA-I) or 4-message (SIGMA-R) negotiation
//! (XEP-0116 §4.3, §4.6, §4.8).

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
use esession_crypto::{DhKeyPair, ModpGroup, Profile, SecretBytes, hash::sha256, sas};
use esession_forms::esession::{Accept, BobIdentity, DhOffer, Offers, Request, Response, SsnAnswer, Wrapper};
use esession_forms::names::{Disclosure, PubkeyMethod, Security, Version};
use jid::{BareJid, Jid};
use minidom::Element;
use std::collections::VecDeque;
use std::sync::Arc;

/// 3-message (SIGMA-I, Bob proves his identity first) or 4-message (SIGMA-R, with the He
/// commitment, SAS and retained secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 3-message.
    Three,
    /// 4-message.
    Four,
}

impl Mode {
    fn flow(self) -> Flow {
        match self {
            Mode::Three => Flow::Three,
            Mode::Four => Flow::Four,
        }
    }
}

/// Waiting for Bob's response.
struct AwaitResponse {
    mode: Mode,
    /// The request as sent (re-read).
    request: Request,
    na: Vec<u8>,
    pairs: Vec<(ModpGroup, DhKeyPair)>,
    form_a: Vec<u8>,
}

/// 4-message: waiting for Bob's identity.
struct AwaitIdentity {
    algs: Algs,
    settings: Settings,
    na: Vec<u8>,
    nb: Vec<u8>,
    d: Vec<u8>,
    own: DhKeyPair,
    k: SecretBytes,
    ca_after: u128,
    cb: u128,
    form_b: Vec<u8>,
    ma: Vec<u8>,
    resp_method: PubkeyMethod,
}

enum State {
    Idle,
    AwaitResponse(Box<AwaitResponse>),
    AwaitIdentity(Box<AwaitIdentity>),
    Done,
}

/// Alice. Created per negotiation; [`Initiator::start`] sends the request, [`Initiator::handle`]
/// takes Bob's stanzas, outputs are drained with [`Initiator::poll_output`].
pub struct Initiator {
    cfg: Arc<Config>,
    peer: Jid,
    thread: String,
    state: State,
    out: VecDeque<Output>,
    shaper: Option<Box<dyn Shaper>>,
    piggyback: Option<(Element, bool)>,
}

impl core::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Initiator(peer {}, thread {})", self.peer, self.thread)
    }
}

impl Initiator {
    /// A negotiation with `peer` (a full JID, or a bare one for a service) on `thread`.
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

    /// Content to encrypt into the stanza of our 3-message accept (§4.6.4). With `terminate`,
    /// the session ends with that stanza: object encryption.
    pub fn piggyback(&mut self, content: Element, terminate: bool) {
        self.piggyback = Some((content, terminate));
    }

    /// Sends the forms through `shaper` (see [`Shaper`]).
    #[must_use]
    pub fn with_shaper(mut self, shaper: Box<dyn Shaper>) -> Self {
        self.shaper = Some(shaper);
        self
    }

    /// The peer, as addressed.
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

    /// Whether the negotiation is over (established or failed).
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn peer_bare(&self) -> BareJid {
        self.peer.to_bare()
    }

    /// Sends the ESession request (§4.3): one e (3-message) or He (4-message) per offered
    /// group, in preference order, and N_A.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when already started; [`Error::Config`] for an offer that cannot be
    /// made (no group, `none` identities in a 3-message request).
    pub fn start(&mut self, mode: Mode, entropy: &mut dyn Entropy) -> Result<()> {
        if !matches!(self.state, State::Idle) {
            return Err(Error::ApiMisuse("already started"));
        }
        let c = Arc::clone(&self.cfg);
        let p = c.provider.sanitized();
        // X116-4.3-07: 'none' MUST NOT be specified with 3-message negotiation (§4.3 item 9).
        let methods = |v: &[PubkeyMethod]| -> Vec<PubkeyMethod> {
            v.iter().filter(|m| mode == Mode::Four || **m != PubkeyMethod::None).cloned().collect()
        };
        let (init_pubkey, resp_pubkey) = (methods(&c.init_pubkey), methods(&c.resp_pubkey));
        if p.modp.is_empty() || p.crypt_algs.is_empty() || p.hash_algs.is_empty() {
            return Err(Error::Config("no group, cipher or hash to offer"));
        }
        if init_pubkey.is_empty() || resp_pubkey.is_empty() {
            return Err(Error::Config("a 3-message negotiation needs key or hash identities"));
        }
        let none_only = init_pubkey.iter().chain(&resp_pubkey).all(|m| *m == PubkeyMethod::None);
        let na = entropy.nonce();
        let mut pairs = Vec::with_capacity(p.modp.len());
        for g in &p.modp {
            pairs.push((*g, entropy.dh(*g)?));
        }
        let ours: Vec<Vec<u8>> = pairs
            .iter()
            .map(
                |(_, kp)| {
                    if mode == Mode::Four { sha256(kp.public()).to_vec() } else { kp.public().to_vec() }
                },
            )
            .collect();
        let dh = match mode {
            Mode::Four => DhOffer::Hashes(ours.clone()),
            Mode::Three => DhOffer::Keys(ours.clone()),
        };
        let request = Request {
            accept: true,
            offers: Offers {
                logging: c.logging.clone(),
                disclosure: vec![Disclosure::Never],
                security: c.security.clone(),
                modp: p.modp.clone(),
                crypt_algs: p.crypt_algs.clone(),
                hash_algs: p.hash_algs.clone(),
                // Left out when both identities are fixed to 'none' (§4.3 item 10, I3). One
                // algorithm serves both directions: when we identify with a key, only its
                // algorithm can be chosen.
                sign_algs: if none_only {
                    Vec::new()
                } else {
                    match (&c.identity, init_pubkey.iter().any(|m| *m != PubkeyMethod::None)) {
                        (Some(k), true) => vec![k.public_key().alg()],
                        _ => p.sign_algs.clone(),
                    }
                },
                compress: c.compress.clone(),
                stanzas: c.stanzas.clone(),
                ver: vec![Version::V1_0],
                rekey_freq: c.rekey_freq,
            },
            init_pubkey,
            resp_pubkey,
            my_nonce: na.clone(),
            // 4-message only (I2); the deployed dialect offers it in 3-message requests too.
            sas_algs: if mode == Mode::Four || c.profile == Profile::Gajim {
                p.sas_algs.clone()
            } else {
                Vec::new()
            },
            dh,
        };
        let sent = forms::outgoing(c.profile, false, &mut self.shaper, &request, |r: &Request| {
            r.dh.values() == ours.as_slice() && r.my_nonce == na
        })?;
        // form_A is the request as sent, whole.
        let form_a = esession_forms::normalize::form_content(c.profile, &sent.x, &[])
            .map_err(|_| Error::Config("cannot normalize our request"))?;
        self.out.push_back(Output::Send(wire::message(
            &self.peer,
            &self.thread,
            vec![Wrapper::Feature.wrap(sent.x)],
        )));
        self.state =
            State::AwaitResponse(Box::new(AwaitResponse { mode, request: sent.form, na, pairs, form_a }));
        Ok(())
    }

    /// Handles a stanza from Bob. On any failure the negotiation ends (an error may be sent and
    /// `Output::Rejected` is emitted) and everything learned is discarded.
    ///
    /// # Errors
    /// The failure, also reported as `Output::Rejected`.
    pub fn handle(
        &mut self,
        now: DateTime<Utc>,
        stanza: &Element,
        entropy: &mut dyn Entropy,
        stores: &mut Stores<'_>,
    ) -> Result<()> {
        if matches!(self.state, State::Idle | State::Done) {
            return Err(Error::ApiMisuse("no stanza is expected"));
        }
        let state = core::mem::replace(&mut self.state, State::Done);
        let r = match (wire::screen(stanza), state) {
            // An error from Bob ends the negotiation; it is never answered (RFC 6120 §8.3.1).
            (wire::Screened::Error(e), _) => Err(e),
            (wire::Screened::TooLarge, _) => {
                Err(self.refuse(None, Check::Form, Condition::NotAcceptable, &[]))
            }
            (wire::Screened::Read, State::AwaitResponse(s)) => {
                self.on_response(*s, stanza, entropy, stores, now)
            }
            (wire::Screened::Read, State::AwaitIdentity(s)) => self.on_identity(*s, stanza, stores, now),
            (wire::Screened::Read, State::Idle | State::Done) => {
                Err(Error::ApiMisuse("no stanza is expected"))
            }
        };
        if let Err(e) = &r {
            // Everything learned in this negotiation is dropped with the state (§4.4).
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
        let owned: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        self.out.push_back(Output::Send(wire::error_reply(
            &self.peer,
            &self.thread,
            received,
            condition,
            &owned,
        )));
        Error::peer(check, condition, fields)
    }

    /// The received form, or the refusal (`condition` for a form that does not parse).
    fn read<'s>(&mut self, stanza: &'s Element, condition: Condition) -> Result<Incoming<'s>> {
        forms::incoming(stanza).map_err(|u| match u {
            Unread::NoWrapper => Error::ApiMisuse("not an ESession stanza"),
            Unread::NoForm => Error::peer(Check::Form, condition, &[]),
            Unread::BadForm(w) => self.refuse(Some(w), Check::Form, condition, &[]),
        })
    }

    fn on_response(
        &mut self,
        s: AwaitResponse,
        stanza: &Element,
        entropy: &mut dyn Entropy,
        stores: &mut Stores<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let received = self.read(stanza, Condition::NotAcceptable)?;
        let wrapper = received.wrapper;
        if received.data.field("dhkeys").is_none() {
            // A stanza-session answer: Bob declined the ESession (§4.4, Example 7).
            let a = SsnAnswer::parse(&received.data)
                .map_err(|_| Error::Rejected { condition: None, fields: vec![] })?;
            return match a.security {
                Some(sec @ (Security::C2s | Security::None))
                    if a.accept && s.request.offers.security.contains(&sec) =>
                {
                    self.out.push_back(Output::StanzaSession { security: sec });
                    Ok(())
                }
                _ => Err(Error::Rejected { condition: None, fields: vec![] }),
            };
        }
        let resp = Response::parse(&received.data).map_err(|e| {
            let field = match &e {
                esession_forms::Error::MissingField(f) => vec![*f],
                _ => vec![],
            };
            self.refuse(Some(wrapper), Check::Form, Condition::NotAcceptable, &field)
        })?;
        // §4.6.1 step 1: Bob's choices must be among our offers.
        let offered = Offered {
            flow: s.mode.flow(),
            offers: &s.request.offers,
            init_pubkey: &s.request.init_pubkey,
            resp_pubkey: &s.request.resp_pubkey,
            sas_algs: &s.request.sas_algs,
            none_in_three: self.cfg.support.none_in_three_message,
        };
        // X116-4.6.1-01: every choice among what we offered.
        let bad = check::unacceptable(&offered, None, &resp);
        if !bad.is_empty() {
            return Err(self.refuse(Some(wrapper), Check::Options, Condition::NotAcceptable, &bad));
        }
        if resp.nonce != s.na {
            return Err(self.refuse(
                Some(wrapper),
                Check::NonceEcho,
                Condition::FeatureNotImplemented,
                &["nonce"],
            ));
        }
        let Some(own) = s.pairs.into_iter().find(|(g, _)| *g == resp.modp).map(|(_, kp)| kp) else {
            return Err(self.refuse(Some(wrapper), Check::Options, Condition::NotAcceptable, &["modp"]));
        };
        // Step 2: 1 < d < p - 1, and K = HASH(d^x mod p).
        // X116-4.6.1-01: d is range-checked before use (§4.6.1 step 2).
        let Ok(z) = own.agree_reusable(&resp.d) else {
            return Err(self.refuse(Some(wrapper), Check::DRange, Condition::NotAcceptable, &["dhkeys"]));
        };
        let cfg = Arc::clone(&self.cfg);
        let algs = Algs::chosen(cfg.profile, &resp);
        let k = z.session_key(&algs.hash)?;
        let ca = resp.counter;
        let cb = ca ^ (1 << 127);
        let form_b = received.content(cfg.profile).map_err(|_| Error::Config("normalize"))?;
        let e = own.public().to_vec();
        let init_method = resp.init_pubkey.clone().unwrap_or(PubkeyMethod::Key);
        let resp_method = resp.resp_pubkey.clone().unwrap_or(PubkeyMethod::Key);
        let settings = Settings::chosen(&resp);
        self.alert_disclosure(&settings);
        // Provisory keys (4-message, §4.6.1 step 6) or the session's keys (3-message).
        let keys = SessionKeys::derive(&algs.hash, &k)?;
        match s.mode {
            Mode::Three => {
                // §4.6.2: verify Bob's identity.
                let (Some(id_b), Some(m_b)) = (resp.identity.as_ref(), resp.mac.as_ref()) else {
                    return Err(self.refuse(
                        Some(wrapper),
                        Check::Form,
                        Condition::FeatureNotImplemented,
                        &["identity"],
                    ));
                };
                let bare = self.peer_bare();
                let claimed = Claimed { id: id_b, m: m_b, method: &resp_method, jid: &bare, who: Who::Bob };
                let input = MacInput { before: &[&s.na, &resp.my_nonce, &resp.d], after: &[&form_b] };
                let rev = sigma::reveal(&algs, &keys.responder, cb, &claimed, &input, &*stores.trust)
                    .map_err(|check| {
                        self.refuse(Some(wrapper), check, Condition::FeatureNotImplemented, &[])
                    })?;
                self.observe_key(stores, rev.proof.key())?;
                // §4.6.3-4.6.4: our identity, then the session.
                let object = self.piggyback.as_ref().is_some_and(|(_, t)| *t);
                let accept = Accept {
                    accept: true,
                    nonce: resp.my_nonce.clone(),
                    e: None,
                    rshashes: Vec::new(),
                    terminate: object,
                    identity: Vec::new(),
                    mac: Vec::new(),
                };
                let sent = forms::outgoing(cfg.profile, false, &mut self.shaper, &accept, |a: &Accept| {
                    a.nonce == resp.my_nonce
                })?;
                let mut x = sent.x;
                let input =
                    MacInput { before: &[&resp.my_nonce, &s.na, &e], after: &[&s.form_a, &sent.content] };
                let hidden = sigma::hide(
                    &algs,
                    &keys.initiator,
                    ca,
                    &init_method,
                    cfg.identity.as_ref(),
                    &input,
                    entropy.rng(),
                )?;
                set_b64(&mut x, "identity", &hidden.id);
                set_b64(&mut x, "mac", &hidden.m);
                let mut est = Established::open(
                    rev.proof,
                    Opening {
                        algs: &algs,
                        settings: &settings,
                        keys: &keys,
                        side: Side::Initiator,
                        send_counter: hidden.counter_after,
                        recv_counter: rev.counter_after,
                        own,
                        peer_public: resp.d.clone(),
                        peer: self.peer.clone(),
                        thread: self.thread.clone(),
                        sas: None,
                        retained_secret_used: false,
                        k,
                    },
                )?;
                let mut msg = wire::message(&self.peer, &self.thread, vec![Wrapper::Feature.wrap(x)]);
                if let Some((content, _)) = self.piggyback.take() {
                    est.attach(&mut msg, &content, entropy.rng())?;
                }
                if object {
                    est.close();
                }
                self.out.push_back(Output::Send(msg));
                self.out.push_back(Output::Established(Box::new(est)));
                self.state = State::Done;
                Ok(())
            }
            Mode::Four => {
                // rshashes with decoys (§4.6.4).
                let mut rshashes: Vec<Vec<u8>> = Vec::new();
                for r in stores.retained.for_jid(&self.peer_bare(), now) {
                    rshashes.push(kdf::rshash(&algs.hash, &s.na, &r.secret)?);
                }
                let hlen = algs.hash.output_len()?;
                // X116-4.6.4-04: random decoys in rshashes.
                for _ in 0..cfg.decoys {
                    let mut d = entropy.bytes(hlen);
                    d.truncate(hlen);
                    rshashes.push(d);
                }
                let accept = Accept {
                    accept: true,
                    nonce: resp.my_nonce.clone(),
                    e: Some(e.clone()),
                    rshashes,
                    terminate: false,
                    identity: Vec::new(),
                    mac: Vec::new(),
                };
                let sent = forms::outgoing(
                    cfg.profile,
                    cfg.example11_types,
                    &mut self.shaper,
                    &accept,
                    |a: &Accept| a.e.as_deref() == Some(e.as_slice()) && a.nonce == resp.my_nonce,
                )?;
                let mut x = sent.x;
                let input =
                    MacInput { before: &[&resp.my_nonce, &s.na, &e], after: &[&s.form_a, &sent.content] };
                let hidden = sigma::hide(
                    &algs,
                    &keys.initiator,
                    ca,
                    &init_method,
                    cfg.identity.as_ref(),
                    &input,
                    entropy.rng(),
                )?;
                set_b64(&mut x, "identity", &hidden.id);
                set_b64(&mut x, "mac", &hidden.m);
                self.out.push_back(Output::Send(wire::message(
                    &self.peer,
                    &self.thread,
                    vec![Wrapper::Feature.wrap(x)],
                )));
                self.state = State::AwaitIdentity(Box::new(AwaitIdentity {
                    algs,
                    settings,
                    na: s.na,
                    nb: resp.my_nonce,
                    d: resp.d,
                    own,
                    k,
                    ca_after: hidden.counter_after,
                    cb,
                    form_b,
                    ma: hidden.m,
                    resp_method,
                }));
                Ok(())
            }
        }
    }

    fn on_identity(
        &mut self,
        s: AwaitIdentity,
        stanza: &Element,
        stores: &mut Stores<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let received = self.read(stanza, Condition::FeatureNotImplemented)?;
        let wrapper = received.wrapper;
        let form = BobIdentity::parse(&received.data)
            .map_err(|_| self.refuse(Some(wrapper), Check::Form, Condition::FeatureNotImplemented, &[]))?;
        if form.nonce != s.na {
            return Err(self.refuse(
                Some(wrapper),
                Check::NonceEcho,
                Condition::FeatureNotImplemented,
                &["nonce"],
            ));
        }
        let cfg = Arc::clone(&self.cfg);
        // §4.8.1: find the SRS by srshash, K = HASH(K | SRS | OSS).
        let jid = self.peer_bare();
        let srs = stores.retained.for_jid(&jid, now).into_iter().find_map(|r| {
            let h = kdf::srshash(&s.algs.hash, &r.secret).ok()?;
            esession_crypto::secret::ct_eq(&h, &form.srshash)
                .then(|| (r.secret.duplicate(), r.chain_verified))
        });
        let k_final = kdf::final_k(&s.algs.hash, &s.k, srs.as_ref().map(|(x, _)| x), cfg.oss.as_ref())?;
        let keys = SessionKeys::derive(&s.algs.hash, &k_final)?;
        // §4.8.2: Bob's identity, with form_B2.
        let form_b2 = received.content(cfg.profile).map_err(|_| Error::Config("normalize"))?;
        let claimed =
            Claimed { id: &form.identity, m: &form.mac, method: &s.resp_method, jid: &jid, who: Who::Bob };
        let input = MacInput { before: &[&s.na, &s.nb, &s.d], after: &[&s.form_b, &form_b2] };
        let rev = sigma::reveal(&s.algs, &keys.responder, s.cb, &claimed, &input, &*stores.trust)
            .map_err(|check| self.refuse(Some(wrapper), check, Condition::FeatureNotImplemented, &[]))?;
        self.observe_key(stores, rev.proof.key())?;
        let sas_value = sas::sas28x5(cfg.profile, &s.algs.hash, &s.ma, &s.form_b)?;
        let had_secrets = !stores.retained.for_jid(&jid, now).is_empty();
        if srs.is_none() && had_secrets {
            self.out.push_back(Output::Alert(Alert::RetainedSecretMismatch { jid: jid.clone() }));
        }
        self.sas_alerts(stores, srs.is_some());
        let new_rs = kdf::new_retained_secret(&s.algs.hash, &k_final)?;
        let chain_verified = srs.as_ref().is_some_and(|(_, v)| *v);
        stores.retained.replace(&jid, srs.as_ref().map(|(x, _)| x), new_rs, now, chain_verified)?;
        self.out.push_back(Output::SasReady(sas_value.clone()));
        let mut est = Established::open(
            rev.proof,
            Opening {
                algs: &s.algs,
                settings: &s.settings,
                keys: &keys,
                side: Side::Initiator,
                send_counter: s.ca_after,
                recv_counter: rev.counter_after,
                own: s.own,
                peer_public: s.d,
                peer: self.peer.clone(),
                thread: self.thread.clone(),
                sas: Some(sas_value),
                retained_secret_used: srs.is_some(),
                k: k_final,
            },
        )?;
        // Content that came with Bob's identity, now that it verified (§4.7.4).
        let content = est.open_attached(stanza);
        self.out.push_back(Output::Established(Box::new(est)));
        match content {
            Ok(Some((content, unprotected))) => self.out.push_back(Output::Received { content, unprotected }),
            Ok(None) => {}
            Err(e) => self.out.push_back(Output::Rejected(e)),
        }
        self.state = State::Done;
        Ok(())
    }

    fn alert_disclosure(&mut self, s: &Settings) {
        if s.disclosure != Disclosure::Never {
            // X116-7.6-01: disclosure other than never is told at once.
            self.out.push_back(Output::Alert(Alert::Disclosure(s.disclosure.clone())));
        }
    }

    fn sas_alerts(&mut self, stores: &mut Stores<'_>, retained: bool) {
        let jid = self.peer_bare();
        if !retained {
            self.out.push_back(Output::Alert(Alert::NoRetainedSecret { jid: jid.clone() }));
        }
        if !stores.trust.sas_confirmed(&jid) {
            self.out.push_back(Output::Alert(Alert::SasNotConfirmed { jid }));
        }
    }

    fn observe_key(
        &mut self,
        stores: &mut Stores<'_>,
        key: Option<&esession_crypto::PublicKey>,
    ) -> Result<()> {
        for a in crate::store::key_alerts(&mut *stores.trust, &self.peer_bare(), key)? {
            self.out.push_back(Output::Alert(a));
        }
        Ok(())
    }
}
