//! Bob: the responder (XEP-0116 §4.4, §4.5, §4.7).

use crate::config::Config;
use crate::entropy::Entropy;
use crate::error::{Check, Condition, Error, Result};
use crate::outputs::{Alert, Established, Output};
use crate::shape::{FormKind, Shaper, set_b64};
use crate::sigma::{self, Algs, Who};
use crate::store::{Stores, TrustStore, bare};
use crate::wire;
use esession_crypto::kdf::{self, SessionKeys, cipher_key};
use esession_crypto::{DhKeyPair, ModpGroup, PublicKey, SecretBytes, hash::sha256, sas, secret};
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Accept, BobIdentity, DhOffer, Request, Response, SsnAnswer, Wrapper};
use esession_forms::names::{Compress, Disclosure, Logging, PubkeyMethod, Security, StanzaType};
use esession_forms::negotiation::choose;
use esession_forms::normalize::form_content;
use esession_stanza::{DirectionKeys, Params, Session};
use minidom::Element;
use std::collections::VecDeque;
use std::sync::Arc;

/// The negotiated values the session needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `logging`.
    pub logging: Logging,
    /// `disclosure`.
    pub disclosure: Disclosure,
    /// `stanzas`.
    pub stanzas: Vec<StanzaType>,
    /// `compress`.
    pub compress: Compress,
    /// `rekey_freq`.
    pub rekey_freq: u32,
    /// `modp`.
    pub group: ModpGroup,
}

impl Settings {
    /// The settings an answer (or an offline start) chose.
    #[must_use]
    pub fn from_response(r: &Response) -> Self {
        Self {
            logging: r.logging.clone(),
            disclosure: r.disclosure.clone(),
            stanzas: r.stanzas.clone(),
            compress: r.compress.clone(),
            rekey_freq: r.rekey_freq,
            group: r.modp,
        }
    }
}

/// Hands the final keys and counters over to esession-stanza. Identity blocks consumed the
/// counters; stanzas continue from there (A9).
///
/// # Errors
/// Unsupported algorithms or key lengths.
#[allow(clippy::too_many_arguments)]
pub fn open_session(
    algs: &Algs,
    s: &Settings,
    keys: &SessionKeys,
    initiator: bool,
    send_counter: u128,
    recv_counter: u128,
    own: DhKeyPair,
    peer_public: Vec<u8>,
) -> Result<Session> {
    let params = Params {
        profile: algs.profile,
        hash: algs.hash.clone(),
        cipher: algs.cipher.clone(),
        compress: s.compress.clone(),
        stanzas: s.stanzas.clone(),
        rekey_freq: s.rekey_freq,
        group: s.group,
        max_blocks: esession_stanza::DEFAULT_MAX_BLOCKS,
    };
    let dir = |k: &kdf::DirectionKeys, counter| -> Result<DirectionKeys> {
        Ok(DirectionKeys {
            cipher_key: cipher_key(algs.profile, &algs.cipher, &k.kc)?,
            mac_key: k.km.duplicate(),
            counter,
        })
    };
    let (mine, theirs) =
        if initiator { (&keys.initiator, &keys.responder) } else { (&keys.responder, &keys.initiator) };
    Ok(Session::new(params, dir(mine, send_counter)?, dir(theirs, recv_counter)?, own, peer_public)?)
}

/// Key-association alerts (§7.4) for the key `peer` proved (or none), then the association.
pub(crate) fn key_alerts(
    trust: &mut dyn TrustStore,
    peer: &str,
    key: Option<&PublicKey>,
) -> core::result::Result<Vec<Alert>, crate::store::StoreError> {
    let jid = bare(peer).to_owned();
    let mut alerts = Vec::new();
    let known: Vec<PublicKey> = trust.for_jid(&jid).into_iter().map(|r| r.key.clone()).collect();
    if !known.is_empty() && key.is_none_or(|k| !known.contains(k)) {
        alerts.push(Alert::KeyChanged { jid: jid.clone() });
    }
    if let Some(k) = key {
        if let Some(r) = trust.record(k) {
            let others: Vec<String> = r.jids.iter().filter(|j| **j != jid).cloned().collect();
            if !others.is_empty() {
                alerts.push(Alert::KeyUnderOtherJid { jid: jid.clone(), known_as: others });
            }
        }
        trust.associate(&jid, k.clone())?;
    }
    Ok(alerts)
}

struct AwaitAccept {
    four: bool,
    algs: Algs,
    settings: Settings,
    na: Vec<u8>,
    nb: Vec<u8>,
    y: DhKeyPair,
    d: Vec<u8>,
    /// 4-message: the He Alice committed to for the chosen group.
    he: Option<Vec<u8>>,
    /// 3-message: Alice's e and K.
    e: Option<Vec<u8>>,
    k: Option<SecretBytes>,
    ca: u128,
    cb: u128,
    /// C_B after our identity (3-message).
    cb_after: u128,
    form_a: Vec<u8>,
    form_b: Vec<u8>,
    init_method: PubkeyMethod,
    resp_method: PubkeyMethod,
}

enum State {
    Idle,
    AwaitAccept(Box<AwaitAccept>),
    Done,
}

/// Bob. Created when a request arrives; outputs are drained with [`Responder::poll_output`].
pub struct Responder {
    cfg: Arc<Config>,
    peer: String,
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
    pub fn new(cfg: Arc<Config>, peer: &str, thread: &str) -> Self {
        Self {
            cfg,
            peer: peer.to_owned(),
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

    fn shape(&mut self, kind: FormKind, x: Element) -> Element {
        match self.shaper.as_mut() {
            Some(s) => s.shape(kind, x),
            None => x,
        }
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

    /// Handles a stanza from Alice (her request, then her accept).
    ///
    /// # Errors
    /// The failure, also reported as `Output::Rejected`; the state is discarded.
    pub fn handle(
        &mut self,
        now: u64,
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
            (wire::Screened::Read, State::Idle) => self.on_request(stanza, entropy, stores),
            (wire::Screened::Read, State::AwaitAccept(s)) => self.on_accept(*s, stanza, entropy, stores, now),
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

    fn send_form(&mut self, wrapper: Wrapper, x: Element) {
        self.out.push_back(Output::Send(wire::message(&self.peer, &self.thread, vec![wrapper.wrap(x)])));
    }

    fn on_request(
        &mut self,
        stanza: &Element,
        entropy: &mut dyn Entropy,
        stores: &mut Stores<'_>,
    ) -> Result<()> {
        let wrapper = Wrapper::find(stanza).ok_or(Error::ApiMisuse("not an ESession stanza"))?;
        let (_, x_req) =
            Wrapper::unwrap(wrapper).map_err(|_| Error::peer(Check::Form, Condition::NotAcceptable, &[]))?;
        let req = DataForm::parse(x_req).and_then(|f| Request::parse(&f)).map_err(|e| {
            let field = match &e {
                esession_forms::Error::MissingField(f) => vec![*f],
                esession_forms::Error::BadValue { .. } | esession_forms::Error::Base64 { .. } => vec![],
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
                    let x = answer.to_form(cfg.profile).to_element_with(false);
                    self.send_form(Wrapper::Feature, x);
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
        let response = choices.response(nb, d.clone(), req.my_nonce.clone(), ca);
        let gajim = cfg.profile == esession_crypto::Profile::Gajim;
        let mut x = self.shape(FormKind::Response, response.to_form(cfg.profile).to_element_with(gajim));
        // What we send is what counts: re-read our choices from it (a shaper may have made other
        // free choices, which must still be acceptable to us).
        let sent = DataForm::parse(&x)
            .and_then(|f| Response::parse(&f))
            .map_err(|_| Error::Config("the response does not parse"))?;
        if sent.d != d || sent.nonce != req.my_nonce || !within(&req, &sent, &cfg.support) {
            return Err(Error::Config("the response sent is not one we can stand by"));
        }
        let algs = Algs {
            profile: cfg.profile,
            hash: sent.hash_alg.clone(),
            cipher: sent.crypt_alg.clone(),
            sign: sent.sign_alg.clone(),
        };
        let settings = Settings::from_response(&sent);
        let (nb, ca) = (sent.my_nonce.clone(), sent.counter);
        let cb = ca ^ (1 << 127);
        let form_a = form_content(cfg.profile, x_req, &[]).map_err(|_| Error::Config("normalize"))?;
        let form_b =
            form_content(cfg.profile, &x, &["identity", "mac"]).map_err(|_| Error::Config("normalize"))?;
        let mut state = AwaitAccept {
            four,
            algs,
            settings,
            na: req.my_nonce.clone(),
            nb: nb.clone(),
            y,
            d: d.clone(),
            he: None,
            e: None,
            k: None,
            ca,
            cb,
            cb_after: cb,
            form_a,
            form_b,
            init_method: sent.init_pubkey.clone().unwrap_or(PubkeyMethod::Key),
            resp_method: sent.resp_pubkey.clone().unwrap_or(PubkeyMethod::Key),
        };
        match &req.dh {
            DhOffer::Hashes(h) => state.he = h.get(idx).cloned(),
            DhOffer::Keys(es) => {
                let e = es.get(idx).cloned().unwrap_or_default();
                // §4.5.1: 1 < e < p - 1, else feature-not-implemented.
                let k = match state.y.agree_reusable(&e) {
                    Ok(z) => z.session_key(&state.algs.hash)?,
                    Err(_) => {
                        return Err(self.refuse(
                            Some(wrapper),
                            Check::ERange,
                            Condition::FeatureNotImplemented,
                            &["dhkeys"],
                        ));
                    }
                };
                let keys = SessionKeys::derive(&state.algs.hash, &k)?;
                let hidden = sigma::hide(
                    &state.algs,
                    &keys.responder,
                    cb,
                    &state.resp_method,
                    cfg.identity.as_ref(),
                    &[&state.na, &nb, &d],
                    &[&state.form_b],
                    entropy.rng(),
                )?;
                set_b64(&mut x, "identity", &hidden.id);
                set_b64(&mut x, "mac", &hidden.m);
                state.cb_after = hidden.counter_after;
                state.e = Some(e);
                state.k = Some(k);
            }
        }
        self.send_form(Wrapper::Feature, x);
        let _ = stores;
        self.state = State::AwaitAccept(Box::new(state));
        Ok(())
    }

    fn on_accept(
        &mut self,
        s: AwaitAccept,
        stanza: &Element,
        entropy: &mut dyn Entropy,
        stores: &mut Stores<'_>,
        now: u64,
    ) -> Result<()> {
        let wrapper = Wrapper::find(stanza).ok_or(Error::ApiMisuse("not an ESession stanza"))?;
        let (_, x) = Wrapper::unwrap(wrapper)
            .map_err(|_| Error::peer(Check::Form, Condition::FeatureNotImplemented, &[]))?;
        let accept = DataForm::parse(x)
            .and_then(|f| Accept::parse(&f))
            .map_err(|_| self.refuse(Some(wrapper), Check::Form, Condition::FeatureNotImplemented, &[]))?;
        if accept.nonce != s.nb {
            return Err(self.refuse(
                Some(wrapper),
                Check::NonceEcho,
                Condition::FeatureNotImplemented,
                &["nonce"],
            ));
        }
        let cfg = Arc::clone(&self.cfg);
        let (e, k) = if s.four {
            // §4.7.1: the He commitment, the range of e, K = HASH(e^y).
            let Some(e) = accept.e.clone() else {
                return Err(self.refuse(
                    Some(wrapper),
                    Check::Form,
                    Condition::FeatureNotImplemented,
                    &["dhkeys"],
                ));
            };
            let he_ok = s.he.as_ref().is_some_and(|he| secret::ct_eq(&sha256(&e), he));
            if !he_ok {
                return Err(self.refuse(
                    Some(wrapper),
                    Check::HeCommitment,
                    Condition::FeatureNotImplemented,
                    &["dhkeys"],
                ));
            }
            let k = match s.y.agree_reusable(&e) {
                Ok(z) => z.session_key(&s.algs.hash)?,
                Err(_) => {
                    return Err(self.refuse(
                        Some(wrapper),
                        Check::ERange,
                        Condition::FeatureNotImplemented,
                        &["dhkeys"],
                    ));
                }
            };
            (e, k)
        } else {
            match (s.e.clone(), s.k.as_ref()) {
                (Some(e), Some(k)) => (e, k.duplicate()),
                _ => return Err(Error::ApiMisuse("3-message state without K")),
            }
        };
        let provisory = SessionKeys::derive(&s.algs.hash, &k)?;
        let form_a2 =
            form_content(cfg.profile, x, &["identity", "mac"]).map_err(|_| Error::Config("normalize"))?;
        let rev = sigma::reveal(
            &s.algs,
            &provisory.initiator,
            s.ca,
            &accept.identity,
            &accept.mac,
            &s.init_method,
            &[&s.nb, &s.na, &e],
            &[&s.form_a, &form_a2],
            &*stores.trust,
            &self.peer,
            Who::Alice,
        )
        .map_err(|check| self.refuse(Some(wrapper), check, Condition::FeatureNotImplemented, &[]))?;
        for a in key_alerts(&mut *stores.trust, &self.peer, rev.key.as_ref())? {
            self.out.push_back(Output::Alert(a));
        }
        if !s.four {
            let session =
                open_session(&s.algs, &s.settings, &provisory, false, s.cb_after, rev.counter_after, s.y, e)?;
            let mut est = Box::new(Established {
                session,
                peer: self.peer.clone(),
                thread: self.thread.clone(),
                sas: None,
                peer_key: rev.key,
                retained_secret_used: false,
                logging: s.settings.logging,
                disclosure: s.settings.disclosure,
                k,
                terminating: false,
            });
            // Content in the same stanza, processed only now that Alice's identity verified.
            let content = crate::piggyback::open(&mut est, stanza);
            if accept.terminate {
                // Object encryption: the session ends with this stanza (§4.6.4).
                est.session.close();
            }
            self.out.push_back(Output::Established(est));
            match content {
                Ok(Some((content, unprotected))) => {
                    self.out.push_back(Output::Received { content, unprotected })
                }
                Ok(None) => {}
                Err(e) => self.out.push_back(Output::Rejected(e)),
            }
            self.state = State::Done;
            return Ok(());
        }
        // §4.7.3: the SRS among Alice's rshashes, first for her bare JID, then across all JIDs.
        let jid = bare(&self.peer).to_owned();
        let find = |list: Vec<&crate::store::Retained>| {
            list.into_iter().find_map(|r| {
                let h = kdf::rshash(&s.algs.hash, &s.na, &r.secret).ok()?;
                accept
                    .rshashes
                    .iter()
                    .any(|x| secret::ct_eq(&h, x))
                    .then(|| (r.secret.duplicate(), r.chain_verified))
            })
        };
        let srs = find(stores.retained.for_jid(&jid, now)).or_else(|| find(stores.retained.all(now)));
        let k_final = kdf::final_k(&s.algs.hash, &k, srs.as_ref().map(|(x, _)| x), cfg.oss.as_ref())?;
        let keys = SessionKeys::derive(&s.algs.hash, &k_final)?;
        // §4.7.2: the SAS from M_A and form_B.
        let sas_value = sas::sas28x5(cfg.profile, &s.algs.hash, &accept.mac, &s.form_b)?;
        // §4.7.4: srshash (random when no SRS), then our identity with form_B2.
        let srshash = match &srs {
            Some((x, _)) => kdf::srshash(&s.algs.hash, x)?,
            None => {
                let n = s.algs.hash.output_len()?;
                let mut r = entropy.bytes(n);
                r.truncate(n);
                r
            }
        };
        let ident = BobIdentity { nonce: s.na.clone(), srshash, identity: Vec::new(), mac: Vec::new() };
        let gajim = cfg.profile == esession_crypto::Profile::Gajim;
        let mut x = self.shape(FormKind::BobIdentity, ident.to_form(cfg.profile).to_element_with(gajim));
        let sent = DataForm::parse(&x)
            .and_then(|f| BobIdentity::parse(&f))
            .map_err(|_| Error::Config("our identity form does not parse"))?;
        if sent.nonce != s.na {
            return Err(Error::Config("the identity form sent does not echo Alice's nonce"));
        }
        let form_b2 =
            form_content(cfg.profile, &x, &["identity", "mac"]).map_err(|_| Error::Config("normalize"))?;
        let hidden = sigma::hide(
            &s.algs,
            &keys.responder,
            s.cb,
            &s.resp_method,
            cfg.identity.as_ref(),
            &[&s.na, &s.nb, &s.d],
            &[&s.form_b, &form_b2],
            entropy.rng(),
        )?;
        set_b64(&mut x, "identity", &hidden.id);
        set_b64(&mut x, "mac", &hidden.m);
        let mut msg4 = wire::message(&self.peer, &self.thread, vec![Wrapper::Init.wrap(x)]);
        if srs.is_none() && !stores.retained.for_jid(&jid, now).is_empty() {
            self.out.push_back(Output::Alert(Alert::RetainedSecretMismatch { jid: jid.clone() }));
        }
        let new_rs = kdf::new_retained_secret(&s.algs.hash, &k_final)?;
        let chain_verified = srs.as_ref().is_some_and(|(_, v)| *v);
        stores.retained.replace(&jid, srs.as_ref().map(|(x, _)| x), new_rs, now, chain_verified)?;
        if srs.is_none() {
            self.out.push_back(Output::Alert(Alert::NoRetainedSecret { jid: jid.clone() }));
        }
        if !stores.trust.sas_confirmed(&jid) {
            self.out.push_back(Output::Alert(Alert::SasNotConfirmed { jid }));
        }
        self.out.push_back(Output::SasReady(sas_value.clone()));
        let mut session = open_session(
            &s.algs,
            &s.settings,
            &keys,
            false,
            hidden.counter_after,
            rev.counter_after,
            s.y,
            e,
        )?;
        if let Some(content) = self.piggyback.take() {
            crate::piggyback::attach(&mut session, &mut msg4, &content, entropy.rng())?;
        }
        self.out.push_back(Output::Send(msg4));
        self.out.push_back(Output::Established(Box::new(Established {
            session,
            peer: self.peer.clone(),
            thread: self.thread.clone(),
            sas: Some(sas_value),
            peer_key: rev.key,
            retained_secret_used: srs.is_some(),
            logging: s.settings.logging,
            disclosure: s.settings.disclosure,
            k: k_final,
            terminating: false,
        })));
        self.state = State::Done;
        Ok(())
    }
}

/// Whether the choices of a response are among the request's offers and our support (for a
/// shaped response: the sender's free choices must still be ones we could have made).
fn within(req: &Request, r: &Response, support: &esession_forms::negotiation::Support) -> bool {
    let o = &req.offers;
    let p = support.crypto.sanitized();
    let four = req.is_four_message();
    let method_ok = |m: &Option<PubkeyMethod>, offered: &[PubkeyMethod]| {
        m.as_ref().is_some_and(|m| offered.contains(m) && (four || *m != PubkeyMethod::None))
    };
    o.logging.contains(&r.logging)
        && support.logging.contains(&r.logging)
        && o.disclosure.contains(&r.disclosure)
        && support.disclosure.contains(&r.disclosure)
        && o.security.contains(&r.security)
        && support.security.contains(&r.security)
        && o.modp.contains(&r.modp)
        && p.modp.contains(&r.modp)
        && o.crypt_algs.contains(&r.crypt_alg)
        && p.crypt_algs.contains(&r.crypt_alg)
        && o.hash_algs.contains(&r.hash_alg)
        && p.hash_algs.contains(&r.hash_alg)
        && r.sign_alg.as_ref().is_none_or(|a| o.sign_algs.contains(a) && p.sign_algs.contains(a))
        && o.compress.contains(&r.compress)
        && esession_stanza::compress::supported(&r.compress)
        && !r.stanzas.is_empty()
        && r.stanzas.iter().all(|s| o.stanzas.contains(s) && support.stanzas.contains(s))
        && method_ok(&r.init_pubkey, &req.init_pubkey)
        && method_ok(&r.resp_pubkey, &req.resp_pubkey)
        && o.ver.contains(&r.ver)
        && r.rekey_freq >= o.rekey_freq
        && (four == r.sas_alg.is_some())
}
