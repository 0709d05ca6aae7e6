//! Alice: the initiator of a 3-message (SIGMA-I) or 4-message (SIGMA-R) negotiation
//! (XEP-0116 §4.3, §4.6, §4.8).

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
use esession_crypto::{DhKeyPair, ModpGroup, Profile, SecretBytes, hash::sha256, sas};
use esession_forms::esession::{
    Accept, BobIdentity, DhOffer, Offers, Request, Response, SsnAnswer, SsnCompletion, Wrapper,
};
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
    /// The fields the request marks required (each must be answered, XEP-0155 §4.2).
    required: Vec<String>,
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
    fingerprint_first: bool,
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
            fingerprint_first: false,
        }
    }

    /// Content to encrypt into the stanza of our 3-message accept (§4.6.4). With `terminate`,
    /// the session ends with that stanza: object encryption.
    pub fn piggyback(&mut self, content: Element, terminate: bool) {
        self.piggyback = Some((content, terminate));
    }

    /// Asks Bob for his key's fingerprint (`hash`) before his whole key: for a contact whose key
    /// we already hold (XEP-0116 note 22). Without `hash` among the configured methods,
    /// nothing changes.
    pub fn ask_fingerprint_first(&mut self) {
        self.fingerprint_first = true;
    }

    /// Sends the forms through `shaper` (see [`Shaper`]).
    #[must_use]
    pub fn with_shaper(mut self, shaper: Box<dyn Shaper>) -> Self {
        self.shaper = Some(shaper);
        self
    }

    /// The peer: as addressed, then the full JID of the contact's resource that replied
    /// (XEP-0155 §4.2: the session is with it).
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
        // Only hashes that can key an offered cipher in our profile (Whirlpool never in the
        // Gajim dialect, whose cipher key is the whole hash output).
        let p = c.provider.sanitized().fitting(c.profile);
        // X116-4.3-06: only 'key', 'hash' or 'none' are offered (a configured `Unknown` method is
        // left out). X116-4.3-07: 'none' MUST NOT be specified with 3-message negotiation (§4.3
        // item 9).
        let methods = |v: &[PubkeyMethod]| -> Vec<PubkeyMethod> {
            v.iter()
                .filter(|m| matches!(m, PubkeyMethod::Key | PubkeyMethod::Hash | PubkeyMethod::None))
                .filter(|m| mode == Mode::Four || **m != PubkeyMethod::None)
                .cloned()
                .collect()
        };
        let (init_pubkey, mut resp_pubkey) = (methods(&c.init_pubkey), methods(&c.resp_pubkey));
        // X116-N22-01: a peer whose key we hold is asked for the fingerprint first.
        if self.fingerprint_first
            && let Some(i) = resp_pubkey.iter().position(|m| *m == PubkeyMethod::Hash)
        {
            let hash = resp_pubkey.remove(i);
            resp_pubkey.insert(0, hash);
        }
        if p.modp.is_empty() || p.crypt_algs.is_empty() || p.hash_algs.is_empty() {
            return Err(Error::Config(if c.profile == esession_crypto::Profile::Gajim {
                "no group, cipher or hash to offer (in the Gajim profile: sha256 only)"
            } else {
                "no group, cipher or hash to offer"
            }));
        }
        if init_pubkey.is_empty() || resp_pubkey.is_empty() {
            return Err(Error::Config("no identity method to offer (3-message: key or hash)"));
        }
        let none_only = init_pubkey.iter().chain(&resp_pubkey).all(|m| *m == PubkeyMethod::None);
        // X116-4.3-10: N_A, random (32 octets, I7).
        let na = entropy.nonce();
        // X116-4.3-08: a fresh x (2^255 < x < p - 1, `DhKeyPair`) and e = g^x mod p for each
        // offered group, in the order of the groups.
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
        // X116-4.3-09: every He = SHA256(e) (4-message) or e (3-message), in the order of the
        // groups. X116-4.3-12: a 3-message request sends `dhkeys` instead of `dhhashes`.
        let dh = match mode {
            Mode::Four => DhOffer::Hashes(ours.clone()),
            Mode::Three => DhOffer::Keys(ours.clone()),
        };
        // X116-4.3-01 X116-4.3-11: `accept`, the XEP-0155 fields and every ESession option we
        // are willing to use, each list in our order of preference (the configuration's).
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
            // X116-4.3-12: 4-message only (I2); the deployed dialect (`Profile::Gajim`) offers it
            // in 3-message requests too.
            sas_algs: if mode == Mode::Four || c.profile == Profile::Gajim {
                p.sas_algs.clone()
            } else {
                Vec::new()
            },
            dh,
            other: Vec::new(),
        };
        let sent = forms::outgoing(c.profile, false, &mut self.shaper, &request, |r: &Request| {
            r.dh.values() == ours.as_slice() && r.my_nonce == na
        })?;
        // form_A is the request as sent, whole.
        let form_a = esession_forms::normalize::form_content(c.profile, &sent.x, &[])
            .map_err(|_| Error::Config("cannot normalize our request"))?;
        // X155-4.1-01 X155-4.1-02: a message with the form and the thread only: no `<body/>`,
        // no `type` (normal).
        self.out.push_back(Output::Send(wire::message(
            &self.peer,
            &self.thread,
            vec![Wrapper::Feature.wrap(sent.x)],
        )));
        self.state = State::AwaitResponse(Box::new(AwaitResponse {
            mode,
            request: sent.form,
            na,
            pairs,
            form_a,
            required: sent.required,
        }));
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
        // X116-4.4-05: the state is taken out; only a success puts the next one back.
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
            // X116-4.4-05: everything learned in this negotiation was dropped with the state
            // (taken out above): a failed negotiation reads nothing more.
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
        // X155-4.2-05: the session is with the resource of the contact that replied, whichever
        // one the request was addressed to: our accept (or completion) goes there, and the
        // session's peer is that full JID.
        if let Some(from) = stanza.attr("from").and_then(|f| Jid::new(f).ok())
            && from.is_full()
            && from.to_bare() == self.peer.to_bare()
        {
            self.peer = from;
        }
        let received = self.read(stanza, Condition::NotAcceptable)?;
        let wrapper = received.wrapper;
        if received.data.field("dhkeys").is_none() {
            return self.on_ssn_answer(&s, &received.data);
        }
        let resp = Response::parse(&received.data).map_err(|e| {
            let field: Vec<&str> = e.field().into_iter().collect();
            self.refuse(Some(wrapper), Check::Form, Condition::NotAcceptable, &field)
        })?;
        if resp.my_nonce.len() < check::min_nonce_len(self.cfg.profile) {
            return Err(self.refuse(Some(wrapper), Check::Form, Condition::NotAcceptable, &["my_nonce"]));
        }
        // X116-4.5.2-05: Bob must not return our N_A and e as his N_B and d.
        if resp.my_nonce == s.na {
            return Err(self.refuse(Some(wrapper), Check::Form, Condition::NotAcceptable, &["my_nonce"]));
        }
        if s.pairs.iter().any(|(_, kp)| kp.public() == resp.d.as_slice()) {
            return Err(self.refuse(Some(wrapper), Check::DRange, Condition::NotAcceptable, &["dhkeys"]));
        }
        // §4.6.1 step 1: Bob's choices must be among our offers.
        let offered = Offered {
            flow: s.mode.flow(),
            offers: &s.request.offers,
            init_pubkey: &s.request.init_pubkey,
            resp_pubkey: &s.request.resp_pubkey,
            sas_algs: &s.request.sas_algs,
            none_in_three: self.cfg.support.none_in_three_message,
            profile: self.cfg.profile,
        };
        // X116-4.6.1-01 X155-4.4-02: every choice among what we offered (the answers to our
        // other fields too), every field we marked required answered.
        let mut bad: Vec<String> =
            check::unacceptable(&offered, None, &resp).into_iter().map(str::to_owned).collect();
        bad.extend(check::other_answers(&s.request.other, &resp.other));
        for var in s.required.iter().filter(|v| !resp.answers(v)) {
            if !bad.contains(var) {
                bad.push(var.clone());
            }
        }
        if !bad.is_empty() {
            let names: Vec<&str> = bad.iter().map(String::as_str).collect();
            return Err(self.refuse(Some(wrapper), Check::Options, Condition::NotAcceptable, &names));
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
        // X116-7.6-01: Alice has no disclosure to tell of: she offers only `never`, and the
        // response check refuses any other choice (`check::response`).
        let settings = Settings::chosen(&resp);
        // Provisory keys (4-message, §4.6.1 step 6) or the session's keys (3-message).
        let keys = SessionKeys::derive(&algs.hash, &k)?;
        match s.mode {
            Mode::Three => {
                // X116-4.5.3-05: K is destroyed once the keys are derived (a hazmat build keeps
                // it in the session for known-answer checks).
                let key_check = KeyCheck::of(&k);
                #[cfg(not(feature = "hazmat"))]
                drop(k);
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
                // X116-4.6.4-01: N_B in `nonce`, then ID_A and M_A (set below).
                let accept = Accept {
                    accept: true,
                    nonce: resp.my_nonce.clone(),
                    e: None,
                    rshashes: Vec::new(),
                    terminate: object,
                    identity: Vec::new(),
                    mac: Vec::new(),
                };
                // X155-4.4-03: the completion carries `accept` true (a shaper cannot turn it into
                // a cancel while we open the session).
                let sent = forms::outgoing(cfg.profile, false, &mut self.shaper, &accept, |a: &Accept| {
                    a.accept && a.nonce == resp.my_nonce
                })?;
                let mut x = sent.x;
                // X116-4.6.3-02: Bob's steps (§4.5.4, `sigma::hide`), with N_B before N_A, e and
                // form_A2 after form_A.
                let input =
                    MacInput { before: &[&resp.my_nonce, &s.na, &e], after: &[&s.form_a, &sent.content] };
                // X116-4.6.3-01: Alice proves her identity (init_pubkey's method), hidden.
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
                        key_check,
                        #[cfg(feature = "hazmat")]
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
            // X116-4.6.1-02: 4-message: no identity of Bob's to verify yet (§4.6.2 is skipped);
            // Alice goes on to hiding hers, with the provisory keys.
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
                // X116-4.6.4-01: N_B in `nonce`, then ID_A and M_A (set below).
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
                    |a: &Accept| a.accept && a.e.as_deref() == Some(e.as_slice()) && a.nonce == resp.my_nonce,
                )?;
                let mut x = sent.x;
                // X116-4.6.3-02: as in 3-message (N_B before N_A, form_A2 after form_A).
                let input =
                    MacInput { before: &[&resp.my_nonce, &s.na, &e], after: &[&s.form_a, &sent.content] };
                // X116-4.6.3-01: Alice proves her identity, hidden with the provisory keys.
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

    /// A stanza-session answer: Bob declined the ESession and accepted (or declined) a plain
    /// stanza session (XEP-0116 §4.4, Example 7). An accepted one is completed or cancelled
    /// (XEP-0155 §4.4).
    fn on_ssn_answer(&mut self, s: &AwaitResponse, data: &esession_forms::dataform::DataForm) -> Result<()> {
        let a = SsnAnswer::parse(data).map_err(|_| Error::Rejected { condition: None, fields: vec![] })?;
        if !a.accept {
            // Bob declined (XEP-0155 §4.3): nothing to complete or cancel.
            return Err(Error::Rejected { condition: None, fields: vec![] });
        }
        // X155-4.4-02: the values Bob selected are verified before the session is confirmed.
        let bad = check::ssn_unacceptable(&s.request, &s.required, &a);
        // X155-4.4-01: Bob accepted, so we complete (accept true, X155-4.4-03) or cancel
        // (accept false, X155-4.4-05).
        let completion = SsnCompletion { accept: bad.is_empty() };
        // A completion has no required field: the dialects' layouts of `<required/>` agree.
        let x = completion.to_form(self.cfg.profile).to_element();
        self.out.push_back(Output::Send(wire::message(
            &self.peer,
            &self.thread,
            vec![Wrapper::Feature.wrap(x)],
        )));
        match a.security {
            Some(security @ (Security::C2s | Security::None)) if bad.is_empty() => {
                self.out.push_back(Output::StanzaSession { security });
                Ok(())
            }
            _ => {
                let names: Vec<&str> = bad.iter().map(String::as_str).collect();
                Err(Error::peer(Check::Options, Condition::NotAcceptable, &names))
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
        // X116-4.8.1-01: the SRS is the retained secret whose HMAC over "Shared Retained
        // Secret" matches srshash (constant time), among the secrets for Bob's bare JID that have
        // not expired (`RetainedStore::for_jid` with `now`). Then K = HASH(K | SRS | OSS).
        let jid = self.peer_bare();
        let srs = stores.retained.for_jid(&jid, now).into_iter().find_map(|r| {
            let h = kdf::srshash(&s.algs.hash, &r.secret).ok()?;
            esession_crypto::secret::ct_eq(&h, &form.srshash)
                .then(|| (r.secret.duplicate(), r.chain_verified))
        });
        let k_final = kdf::final_k(&s.algs.hash, &s.k, srs.as_ref().map(|(x, _)| x), cfg.oss.as_ref())?;
        // The Diffie-Hellman K has served (provisory keys, K_final): destroyed.
        drop(s.k);
        // X116-4.8.1-04: the session keys from K_final.
        let keys = SessionKeys::derive(&s.algs.hash, &k_final)?;
        // §4.8.2: Bob's identity, with form_B2.
        let form_b2 = received.content(cfg.profile).map_err(|_| Error::Config("normalize"))?;
        let claimed =
            Claimed { id: &form.identity, m: &form.mac, method: &s.resp_method, jid: &jid, who: Who::Bob };
        let input = MacInput { before: &[&s.na, &s.nb, &s.d], after: &[&s.form_b, &form_b2] };
        // X116-4.8.2-01: Alice verifies Bob's identity as in 3-message (§4.6.2): nothing opens
        // without the `Proof` this hands out.
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
        // K_final has served: destroyed (a hazmat build keeps it for known-answer checks).
        let key_check = KeyCheck::of(&k_final);
        #[cfg(not(feature = "hazmat"))]
        drop(k_final);
        let chain_verified = srs.as_ref().is_some_and(|(_, v)| *v);
        // X116-4.8.1-03: the SRS is destroyed and the new secret stored in its place.
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
                key_check,
                #[cfg(feature = "hazmat")]
                k: k_final,
            },
        )?;
        // Content that came with Bob's identity, now that it verified (§4.7.4).
        let content = est.open_attached(stanza);
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
