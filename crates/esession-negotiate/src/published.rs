//! Answering options that were published instead of sent (XEP-0187 offline sessions), on the
//! same SIGMA core as the live negotiation: Bob answers as a 3-message responder identifying
//! with his key, without waiting for an accept; Alice, on her return, verifies his answer as a
//! 3-message initiator would. What is specific to XEP-0187 (the options form, its signatures,
//! PEP, expiry, the replay store) lives in `esession-offline`; this module is its SIGMA part.

use crate::check::{self, Flow, Offered};
use crate::config::Config;
use crate::entropy::Entropy;
use crate::error::Check;
use crate::established::{Established, KeyCheck, Opening, Settings, Side};
use crate::forms::{self, Form};
use crate::shape::set_b64;
use crate::sigma::{self, Algs, Claimed, MacInput, Proof, Who};
use crate::store::TrustStore;
use esession_crypto::kdf::SessionKeys;
use esession_crypto::{DhKeyPair, ModpGroup, Profile};
use esession_forms::esession::{Offers, Request, Response, Wrapper};
use esession_forms::names::PubkeyMethod;
use esession_forms::negotiation::choose;
use jid::{BareJid, Jid};
use minidom::Element;

/// Whether one of `signatures` over `content` (the published options, normalized without their
/// signatures) verifies with a key trusted for `jid` (XEP-0187 §3.2). The proof is what
/// [`answer`] requires.
///
/// # Errors
/// [`Check::Signature`] when none does.
pub fn verify_signed(
    profile: Profile,
    content: &[u8],
    signatures: &[Vec<u8>],
    trust: &dyn TrustStore,
    jid: &BareJid,
) -> Result<Proof, Check> {
    sigma::signed_by_trusted(profile, content, signatures, trust, jid)
}

/// The request published options stand for: Alice's offers, N_A and one e per group, Bob to
/// identify with a key (A1).
#[must_use]
pub fn as_request(offers: &Offers, na: &[u8], dhkeys: &[Vec<u8>]) -> Request {
    Request {
        accept: true,
        offers: offers.clone(),
        init_pubkey: vec![PubkeyMethod::Key],
        resp_pubkey: vec![PubkeyMethod::Key],
        my_nonce: na.to_vec(),
        sas_algs: Vec::new(),
        dh: esession_forms::esession::DhOffer::Keys(dhkeys.to_vec()),
        other: Vec::new(),
    }
}

/// Why an answer could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unanswerable {
    /// No option of these fields is supported here.
    Unsupported(Vec<String>),
    /// Alice's e for the chosen group is out of range.
    BadE,
    /// Our configuration cannot answer (no identity key) or a primitive failed.
    Failed(crate::Error),
}

/// Bob answers published options in one stanza (XEP-0187 §3.3): the `<init/>` with form_B,
/// his identity and, when given, `content` encrypted in the same stanza; with `terminate`, the
/// session is closed with it (object encryption). `request` is [`as_request`] of the options,
/// `proof` that their signature verified with a key trusted for Alice.
///
/// # Errors
/// See [`Unanswerable`].
#[allow(clippy::too_many_arguments)]
pub fn answer(
    cfg: &Config,
    request: &Request,
    proof: Proof,
    to: Jid,
    thread: &str,
    content: Option<&Element>,
    terminate: bool,
    entropy: &mut dyn Entropy,
) -> Result<(Element, Established), Unanswerable> {
    let mut support = cfg.support.clone();
    support.init_pubkey = vec![PubkeyMethod::Key];
    // The configuration's profile decides which hash keys which cipher.
    support.profile = cfg.profile;
    let choices = choose(request, &support).map_err(|r| Unanswerable::Unsupported(r.fields().to_vec()))?;
    let (group, idx) = choices.modp;
    let e = request.dh.values().get(idx).cloned().ok_or(Unanswerable::BadE)?;
    let nb = entropy.nonce();
    let ca = entropy.counter(cfg.profile);
    let cb = ca ^ (1 << 127);
    let y = entropy.dh(group).map_err(|e| Unanswerable::Failed(e.into()))?;
    let d = y.public().to_vec();
    // Offline: no `accept`, no pubkey fields (A1); `terminate` is part of form_B (I4).
    let proposed = Response {
        accept: None,
        init_pubkey: None,
        resp_pubkey: None,
        sas_alg: None,
        terminate,
        ..choices.response(nb.clone(), d.clone(), request.my_nonce.clone(), ca)
    };
    let offered = Offered {
        flow: Flow::Published,
        offers: &request.offers,
        init_pubkey: &[],
        resp_pubkey: &[],
        sas_algs: &[],
        none_in_three: false,
        profile: cfg.profile,
    };
    let sent = forms::outgoing(cfg.profile, false, &mut None, &proposed, |r: &Response| {
        r.d == d
            && r.nonce == request.my_nonce
            && check::unacceptable(&offered, Some(&cfg.support), r).is_empty()
    })
    .map_err(Unanswerable::Failed)?;
    let resp = &sent.form;
    let algs = Algs::chosen(cfg.profile, resp);
    // A bad e: terminate without an error (§3.3 step 1).
    let k = y
        .agree_reusable(&e)
        .map_err(|_| Unanswerable::BadE)?
        .session_key(&algs.hash)
        .map_err(|e| Unanswerable::Failed(e.into()))?;
    let keys = SessionKeys::derive(&algs.hash, &k).map_err(|e| Unanswerable::Failed(e.into()))?;
    let input = MacInput { before: &[&request.my_nonce, &nb, &d], after: &[&sent.content] };
    let hidden = sigma::hide(
        &algs,
        &keys.responder,
        cb,
        &PubkeyMethod::Key,
        cfg.identity.as_ref(),
        &input,
        entropy.rng(),
    )
    .map_err(Unanswerable::Failed)?;
    let mut x = sent.x;
    set_b64(&mut x, "identity", &hidden.id);
    set_b64(&mut x, "mac", &hidden.m);
    let settings = Settings::chosen(resp);
    let mut est = Established::open(
        proof,
        Opening {
            algs: &algs,
            settings: &settings,
            keys: &keys,
            side: Side::Responder,
            send_counter: hidden.counter_after,
            recv_counter: ca,
            own: y,
            peer_public: e,
            peer: to,
            thread: thread.to_owned(),
            sas: None,
            retained_secret_used: false,
            key_check: KeyCheck::of(&k),
            #[cfg(feature = "hazmat")]
            k,
        },
    )
    .map_err(Unanswerable::Failed)?;
    let mut msg = crate::wire::message(est.peer(), thread, vec![Wrapper::Init.wrap(x)]);
    if let Some(content) = content {
        est.attach(&mut msg, content, entropy.rng()).map_err(Unanswerable::Failed)?;
    }
    if terminate {
        est.close();
    }
    Ok((msg, est))
}

/// An answer to published options, as received: read, not yet verified.
pub struct Start<'a> {
    stanza: &'a Element,
    from: Jid,
    response: Response,
    form_b: Vec<u8>,
}

impl core::fmt::Debug for Start<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Start")
            .field("from", &self.from)
            .field("modp", &self.response.modp)
            .finish_non_exhaustive()
    }
}

impl<'a> Start<'a> {
    /// Reads an offline start: bounded ([`esession_forms::xml::Limits::NEGOTIATION`]), an
    /// `<init/>` form with an identity, from a JID.
    ///
    /// # Errors
    /// [`Check::Form`].
    pub fn read(stanza: &'a Element, profile: Profile) -> Result<Self, Check> {
        if esession_forms::xml::measure(stanza, esession_forms::xml::Limits::NEGOTIATION).is_err() {
            return Err(Check::Form);
        }
        let from = stanza.attr("from").and_then(|f| Jid::new(f).ok()).ok_or(Check::Form)?;
        let received = forms::incoming(stanza).map_err(|_| Check::Form)?;
        let response = <Response as Form>::read(&received.data).map_err(|_| Check::Form)?;
        // Bob's identity and its MAC (the parse refuses one without the other).
        if response.identity.is_none() {
            return Err(Check::Form);
        }
        let form_b = received.content(profile)?;
        Ok(Self { stanza, from, response, form_b })
    }

    /// The sender.
    #[must_use]
    pub fn from(&self) -> &Jid {
        &self.from
    }

    /// The `nonce` it answers (which published N_A).
    #[must_use]
    pub fn nonce(&self) -> &[u8] {
        &self.response.nonce
    }

    /// The group it chose.
    #[must_use]
    pub fn group(&self) -> ModpGroup {
        self.response.modp
    }

    /// Bob's d.
    #[must_use]
    pub fn d(&self) -> &[u8] {
        &self.response.d
    }

    /// Bob's N_B.
    #[must_use]
    pub fn nb(&self) -> &[u8] {
        &self.response.my_nonce
    }

    /// Whether the start ends the session at once (object encryption).
    #[must_use]
    pub fn terminate(&self) -> bool {
        self.response.terminate
    }
}

/// Why Alice refuses a start (silently).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// A check of the negotiation failed.
    Check(Check),
    /// The encrypted content failed (the session is not accepted).
    Content,
}

/// What an accepted start gave: Alice's side of the session (receive only) and the decrypted
/// content with the names of what came in clear beside it (dropped).
pub struct Accepted {
    /// The session.
    pub session: Established,
    /// The content, the names of the unprotected children (dropped), and the names of the
    /// children kept in clear besides `<thread/>` (not covered by the MAC).
    pub content: Option<crate::established::Attached>,
}

impl core::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Accepted")
            .field("session", &self.session)
            .field("content", &self.content.is_some())
            .finish()
    }
}

/// Alice verifies a start as a 3-message initiator (XEP-0187 §3.4 step 3): the choices among
/// `offers` (the options she published) and implemented, 1 < d < p - 1, K, M_B, Bob's key
/// trusted for his JID, his signature; then the session opens and the content is decrypted.
/// Since she sent no `pubkey` field, Bob's identity is a key (§3.4, A1).
///
/// # Errors
/// [`Refused`]: nothing is sent back.
pub fn accept(
    start: Start<'_>,
    offers: &Offers,
    na: &[u8],
    pair: &DhKeyPair,
    profile: Profile,
    trust: &dyn TrustStore,
) -> Result<Accepted, Refused> {
    let r = &start.response;
    let offered = Offered {
        flow: Flow::Published,
        offers,
        init_pubkey: &[],
        resp_pubkey: &[],
        sas_algs: &[],
        none_in_three: false,
        profile,
    };
    // X187-3.4-05: the choices among the published options (and implemented here).
    if !check::unacceptable(&offered, None, r).is_empty() {
        return Err(Refused::Check(Check::Options));
    }
    let (Some(id_b), Some(m_b)) = (r.identity.as_ref(), r.mac.as_ref()) else {
        return Err(Refused::Check(Check::Form));
    };
    let algs = Algs::chosen(profile, r);
    let z = pair.agree_reusable(&r.d).map_err(|_| Refused::Check(Check::DRange))?;
    let k = z.session_key(&algs.hash).map_err(|_| Refused::Check(Check::Options))?;
    let keys = SessionKeys::derive(&algs.hash, &k).map_err(|_| Refused::Check(Check::Options))?;
    let ca = r.counter;
    let cb = ca ^ (1 << 127);
    let bare = start.from.to_bare();
    let claimed = Claimed { id: id_b, m: m_b, method: &PubkeyMethod::Key, jid: &bare, who: Who::Bob };
    let input = MacInput { before: &[na, &r.my_nonce, &r.d], after: &[&start.form_b] };
    let rev = sigma::reveal(&algs, &keys.responder, cb, &claimed, &input, trust).map_err(Refused::Check)?;
    let settings = Settings::chosen(r);
    let own = DhKeyPair::from_exponent(r.modp, pair.export_secret().expose_secret())
        .map_err(|_| Refused::Check(Check::Options))?;
    let thread = start.stanza.get_child("thread", "jabber:client").map(Element::text).unwrap_or_default();
    let mut est = Established::open(
        rev.proof,
        Opening {
            algs: &algs,
            settings: &settings,
            keys: &keys,
            side: Side::Initiator,
            send_counter: ca,
            recv_counter: rev.counter_after,
            own,
            peer_public: r.d.clone(),
            peer: start.from.clone(),
            thread,
            sas: None,
            retained_secret_used: false,
            key_check: KeyCheck::of(&k),
            #[cfg(feature = "hazmat")]
            k,
        },
    )
    .map_err(|_| Refused::Check(Check::Options))?;
    let content = est.open_attached(start.stanza).map_err(|_| Refused::Content)?;
    if r.terminate {
        est.close();
    }
    Ok(Accepted { session: est, content })
}
